/* mllp.c -- the Minimal Lower Layer Protocol (HL7 v2.5.1 Appendix C.4,
 * release 2): frames are 0x0B, the message, 0x1C 0x0D.
 *
 * Promises: the decoder holds at most max_frame bytes of frame plus one read
 * chunk, whatever the peer sends; junk outside frames is skipped, an oversized
 * frame is reported once and skipped to the next start block, and a frame
 * split across any chunk boundaries decodes the same as in one piece. The
 * socket helpers never wait past their timeout, retry EINTR and partial
 * writes, and never raise SIGPIPE.
 */
#include "hl7v2/hl7v2.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Decoder states. */
enum {
    HUNT = 0, /* outside a frame: skipping to a start block */
    BODY,     /* inside a frame */
    DONE,     /* a frame was just handed out; a CR may still follow the 0x1C */
};

void hl7_mllp_frame(struct gw_buf *out, const char *msg, size_t len)
{
    static const char start = HL7_MLLP_START, end[2] = {HL7_MLLP_END, HL7_MLLP_CR};

    gw_buf_append(out, &start, 1);
    gw_buf_append(out, msg, len);
    gw_buf_append(out, end, 2);
}

void hl7_mllp_init(struct hl7_mllp *d, size_t max_frame)
{
    memset(d, 0, sizeof *d);
    d->max_frame = max_frame;
    gw_buf_init(&d->frame, max_frame);
    d->state = HUNT;
}

void hl7_mllp_cleanup(struct hl7_mllp *d)
{
    gw_buf_cleanup(&d->frame);
    free(d->pending);
    d->pending = NULL;
    d->pending_len = d->pending_off = 0;
}

/* Length of the run of frame bytes at data (up to a block character). */
static size_t body_run(const char *data, size_t len)
{
    size_t i = 0;

    while (i < len && data[i] != HL7_MLLP_START && data[i] != HL7_MLLP_END)
        i++;
    return i;
}

enum gw_code hl7_mllp_feed(struct hl7_mllp *d, const char *data, size_t len, size_t *used,
                           const char **frame, size_t *frame_len, struct gw_error *err)
{
    size_t i = 0, run;

    *used = 0;
    *frame = NULL;
    *frame_len = 0;
    if (d->state == DONE) {
        gw_buf_reset(&d->frame);
        d->state = HUNT;
        if (len > 0 && data[0] == HL7_MLLP_CR)
            i = 1; /* the CR that ends the previous frame's block */
    }
    while (i < len) {
        if (d->state == HUNT) {
            if (data[i++] == HL7_MLLP_START) {
                gw_buf_reset(&d->frame);
                d->state = BODY;
            } else {
                d->n_junk++;
            }
            continue;
        }
        run = body_run(data + i, len - i);
        if (run > d->max_frame - d->frame.len) {
            *used = i + run;
            d->state = HUNT;
            d->n_oversized++;
            gw_buf_reset(&d->frame);
            return gw_fail(err, GW_E_LIMIT,
                           "MLLP frame exceeds %zu bytes; skipped to the next start block",
                           d->max_frame);
        }
        gw_buf_append(&d->frame, data + i, run);
        if (d->frame.err) {
            *used = i;
            d->state = HUNT;
            gw_buf_reset(&d->frame);
            return gw_fail(err, GW_E_NOMEM, "no memory for an MLLP frame");
        }
        i += run;
        if (i == len)
            break;
        if (data[i++] == HL7_MLLP_START) { /* a new block: the partial frame is dropped */
            d->n_junk += d->frame.len + 1;
            gw_buf_reset(&d->frame);
            continue;
        }
        if (i < len && data[i] == HL7_MLLP_CR)
            i++;
        d->state = DONE;
        *used = i;
        *frame = d->frame.data ? d->frame.data : "";
        *frame_len = d->frame.len;
        return GW_OK;
    }
    *used = len;
    return GW_OK;
}

/* Milliseconds left before deadline (-1 when there is none, 0 when past). */
static int remaining_ms(int64_t deadline)
{
    int64_t left;

    if (deadline < 0)
        return -1;
    left = deadline - gw_mono_ms();
    return left <= 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
}

/* Waits until fd is ready for events; GW_E_IO on timeout or error. */
static enum gw_code wait_fd(int fd, short events, int64_t deadline, int timeout_ms,
                            struct gw_error *err)
{
    struct pollfd pfd = {.fd = fd, .events = events};

    for (;;) {
        int n = poll(&pfd, 1, remaining_ms(deadline));

        if (n > 0)
            return GW_OK;
        if (n < 0 && errno != EINTR)
            return gw_fail(err, GW_E_IO, "MLLP: poll failed (errno %d)", errno);
        if (remaining_ms(deadline) == 0)
            return gw_fail(err, GW_E_IO, "MLLP: timed out after %d ms", timeout_ms);
    }
}

/* Reads the next chunk into d->pending; *eof when the peer closed. */
static enum gw_code fill(struct hl7_mllp *d, int fd, int64_t deadline, int timeout_ms, bool *eof,
                         struct gw_error *err)
{
    ssize_t n;
    enum gw_code rc;

    *eof = false;
    if (!d->pending && !(d->pending = malloc(HL7_MLLP_READ_CHUNK)))
        return gw_fail(err, GW_E_NOMEM, "no memory for an MLLP read buffer");
    for (;;) {
        rc = wait_fd(fd, POLLIN, deadline, timeout_ms, err);
        if (rc)
            return rc;
        n = read(fd, d->pending, HL7_MLLP_READ_CHUNK);
        if (n > 0) {
            d->pending_len = (size_t)n;
            d->pending_off = 0;
            return GW_OK;
        }
        if (n == 0) {
            *eof = true;
            return GW_OK;
        }
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return gw_fail(err, GW_E_IO, "MLLP: read failed (errno %d)", errno);
    }
}

enum gw_code hl7_mllp_read(struct hl7_mllp *d, int fd, int timeout_ms, const char **frame,
                           size_t *frame_len, struct gw_error *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : gw_mono_ms() + timeout_ms;
    size_t used;
    bool eof;
    enum gw_code rc;

    *frame = NULL;
    *frame_len = 0;
    for (;;) {
        if (d->pending_off < d->pending_len) {
            rc = hl7_mllp_feed(d, d->pending + d->pending_off, d->pending_len - d->pending_off,
                               &used, frame, frame_len, err);
            d->pending_off += used;
            if (rc || *frame)
                return rc;
        }
        rc = fill(d, fd, deadline, timeout_ms, &eof, err);
        if (rc)
            return rc;
        if (eof && d->state == BODY)
            return gw_fail(err, GW_E_IO, "MLLP: the peer closed the connection inside a frame");
        if (eof)
            return GW_OK; /* closed between frames */
    }
}

enum gw_code hl7_mllp_write(int fd, const char *msg, size_t len, int timeout_ms,
                            struct gw_error *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : gw_mono_ms() + timeout_ms;
    struct gw_buf b;
    size_t off = 0;
    enum gw_code rc = GW_OK;

    gw_buf_init(&b, len + 3);
    hl7_mllp_frame(&b, msg, len);
    if (b.err) {
        gw_buf_cleanup(&b);
        return gw_fail(err, GW_E_NOMEM, "no memory for an MLLP frame");
    }
    while (!rc && off < b.len) {
        ssize_t n = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            rc = wait_fd(fd, POLLOUT, deadline, timeout_ms, err);
        else if (n == 0 || errno != EINTR)
            rc = gw_fail(err, GW_E_IO, "MLLP: send failed (errno %d)", n == 0 ? 0 : errno);
    }
    gw_buf_cleanup(&b);
    return rc;
}
