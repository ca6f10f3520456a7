/* fuzz_mllp.c -- libFuzzer target for the MLLP decoder.
 *
 * The first byte chooses the frame limit, the next eight the chunk sizes; the
 * rest is the socket stream. The same stream is decoded twice, in one piece
 * and in those chunks, and the target aborts unless both give the same frames
 * and the same oversize reports, in the same order (chunk boundaries must
 * never matter), and every frame respects the limit.
 */
#include "hl7v2/hl7v2.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decodes stream with chunk sizes taken in turn from sizes (0 = all at
 * once); records "F<len>:<bytes>" per frame and "L" per oversize report. */
static void decode(const char *stream, size_t len, size_t max_frame, const uint8_t *sizes,
                   struct gw_buf *events)
{
    struct hl7_mllp d;
    size_t off = 0, k = 0;

    hl7_mllp_init(&d, max_frame);
    while (off < len) {
        size_t chunk = sizes ? (size_t)sizes[k++ % 8] + 1 : len - off, used;
        const char *frame;
        size_t frame_len;
        enum gw_code rc;

        if (chunk > len - off)
            chunk = len - off;
        rc = hl7_mllp_feed(&d, stream + off, chunk, &used, &frame, &frame_len, NULL);
        if (used > chunk || (rc == GW_OK && !frame && used != chunk))
            abort();
        off += used;
        if (rc == GW_E_LIMIT) {
            gw_buf_putc(events, 'L');
        } else if (rc != GW_OK) {
            abort();
        } else if (frame) {
            if (frame_len > max_frame || frame[frame_len] != '\0')
                abort();
            gw_buf_printf(events, "F%zu:", frame_len);
            gw_buf_append(events, frame, frame_len);
        }
    }
    hl7_mllp_cleanup(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_buf whole, chunked;
    size_t max_frame;

    if (size < 9)
        return 0;
    max_frame = (size_t)data[0] * 4;
    gw_buf_init(&whole, 1 << 20);
    gw_buf_init(&chunked, 1 << 20);
    decode((const char *)data + 9, size - 9, max_frame, NULL, &whole);
    decode((const char *)data + 9, size - 9, max_frame, data + 1, &chunked);
    if (whole.err || chunked.err || whole.len != chunked.len ||
        (whole.len && memcmp(whole.data, chunked.data, whole.len) != 0))
        abort();
    gw_buf_cleanup(&whole);
    gw_buf_cleanup(&chunked);
    return 0;
}
