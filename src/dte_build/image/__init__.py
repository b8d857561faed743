"""The dte disk image: GPT, FAT32 ESP, manifests, GGUF validation, planning and writing (see docs/design.md)."""
