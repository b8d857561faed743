/* The weights read through UEFI Block I/O (§13.9 ReadBlocks), timed; see blockio_bench.h. */
#include "boot/blockio_bench.h"

#include "boot/efi_proto.h"
#include "boot/status.h"
#include "boot/timer.h"

#define CALL_BYTES (64ull << 20)   /* per ReadBlocks call: large, so the firmware driver can stream */

static int starts_with_gguf(efi_block_io *bio, uint64_t offset, uint8_t *scratch)
{
    uint32_t bs = bio->media->block_size;
    if (bs == 0 || offset % bs) {
        return 0;
    }
    if (EFI_IS_ERROR(bio->read_blocks(bio, bio->media->media_id, offset / bs, bs, scratch))) {
        return 0;
    }
    return scratch[0] == 'G' && scratch[1] == 'G' && scratch[2] == 'U' && scratch[3] == 'F';
}

/* The whole-disk (not partition) Block I/O whose bytes at `offset` start a GGUF: the weights disk. */
static efi_block_io *find_weights_disk(efi_boot_services *bs, uint64_t offset, uint8_t *scratch)
{
    static const efi_guid block_io_guid = EFI_BLOCK_IO_PROTOCOL_GUID;
    efi_uintn count = 0;
    efi_handle *handles = NULL;
    efi_locate_handle_buffer_fn locate = (efi_locate_handle_buffer_fn)bs->locate_handle_buffer;
    if (EFI_IS_ERROR(locate(EFI_LOCATE_BY_PROTOCOL, &block_io_guid, NULL, &count, &handles))) {
        return NULL;
    }
    efi_block_io *found = NULL;
    for (efi_uintn i = 0; i < count && !found; i++) {
        efi_block_io *bio = NULL;
        if (EFI_IS_ERROR(bs->handle_protocol(handles[i], &block_io_guid, (void **)&bio)) ||
            !bio->media->media_present || bio->media->logical_partition) {
            continue;
        }
        if (starts_with_gguf(bio, offset, scratch)) {
            found = bio;
        }
    }
    bs->free_pool(handles);
    return found;
}

int blockio_bench_read(efi_boot_services *bs, uint64_t offset, uint64_t bytes, uint8_t *dst, struct blockio_bench *out)
{
    *out = (struct blockio_bench){0};
    efi_block_io *bio = find_weights_disk(bs, offset, dst);
    if (!bio) {
        dte_status("bench error=no_blockio text=\"no whole-disk Block I/O device holds the GGUF\"");
        return -1;
    }
    uint32_t block = bio->media->block_size;
    uint64_t blocks = (bytes + block - 1) / block;
    uint64_t lba = offset / block;
    uint64_t t0 = timer_ns();
    for (uint64_t done = 0; done < blocks;) {
        uint64_t n = blocks - done < CALL_BYTES / block ? blocks - done : CALL_BYTES / block;
        efi_status st = bio->read_blocks(bio, bio->media->media_id, lba + done, n * block, dst + done * block);
        if (EFI_IS_ERROR(st)) {
            dte_status("bench error=read status=0x%llx lba=%llu", (unsigned long long)st,
                       (unsigned long long)(lba + done));
            return -1;
        }
        done += n;
    }
    out->ns = timer_ns() - t0;
    out->bytes = bytes;
    out->block_size = block;
    return 0;
}
