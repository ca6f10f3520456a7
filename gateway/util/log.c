/* log.c -- one JSON object per line on stderr.
 *
 * Lines are written whole under a mutex so that threads never interleave.
 * Callers must never pass patient data (names, identifiers, birth dates):
 * logs leave the protected store.
 */
#include "util/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MAX_LINE 8192

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum gw_log_level log_min = GW_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void gw_log_set_level(enum gw_log_level level)
{
    log_min = level;
}

static void write_line(enum gw_log_level level, const char *event, json_t *fields, const char *fmt,
                       va_list ap) __attribute__((format(printf, 4, 0)));

static void write_line(enum gw_log_level level, const char *event, json_t *fields, const char *fmt,
                       va_list ap)
{
    struct gw_buf line, msg;
    char ts[GW_INSTANT_LEN];
    const char *key, *only = NULL;
    json_t *value;
    va_list again;

    va_copy(again, ap);
    gw_buf_init(&line, LOG_MAX_LINE);
    gw_buf_init(&msg, LOG_MAX_LINE / 2);
    if (strcmp(fmt, "%s") == 0) /* most lines: the text as it is, without printf */
        only = va_arg(again, const char *);
    if (only)
        gw_buf_puts(&msg, only);
    else
        gw_buf_vprintf(&msg, fmt, ap);
    va_end(again);
    gw_time_instant(gw_now_ms(), ts);
    gw_buf_puts(&line, "{\"ts\":\"");
    gw_buf_puts(&line, ts);
    gw_buf_puts(&line, "\",\"level\":\"");
    gw_buf_puts(&line, level_names[level]);
    gw_buf_puts(&line, "\",\"event\":\"");
    gw_buf_json_escape(&line, event, strlen(event));
    gw_buf_puts(&line, "\"");
    if (msg.len) {
        gw_buf_puts(&line, ",\"msg\":\"");
        gw_buf_json_escape(&line, msg.data, msg.len);
        gw_buf_puts(&line, "\"");
    }
    json_object_foreach (fields, key, value) {
        char *text = gw_json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));

        if (!text)
            continue;
        gw_buf_puts(&line, ",\"");
        gw_buf_json_escape(&line, key, strlen(key));
        gw_buf_puts(&line, "\":");
        gw_buf_puts(&line, text);
        free(text);
    }
    gw_buf_puts(&line, "}\n");
    pthread_mutex_lock(&log_lock);
    if (!line.err)
        fwrite(line.data, 1, line.len, stderr);
    else
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"error\",\"event\":\"log-line-dropped\"}\n", ts);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
    gw_buf_cleanup(&msg);
    gw_buf_cleanup(&line);
}

void gw_log(enum gw_log_level level, const char *event, const char *fmt, ...)
{
    va_list ap;

    if (level < log_min)
        return;
    va_start(ap, fmt);
    write_line(level, event, NULL, fmt, ap);
    va_end(ap);
}

void gw_log_fields(enum gw_log_level level, const char *event, json_t *fields, const char *fmt, ...)
{
    va_list ap;

    if (level < log_min)
        return;
    va_start(ap, fmt);
    write_line(level, event, fields, fmt, ap);
    va_end(ap);
}
