/* metrics.c -- a small Prometheus registry: counters, gauges, histograms.
 *
 * One mutex guards the registry; series are few (routes x statuses), so
 * lookups are linear scans. Recording never fails visibly: on allocation
 * failure the sample is dropped, since metrics must not break a request.
 */
#include "util/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define METRIC_MAX_BUCKETS    24
#define METRIC_MAX_COLLECTORS 16

struct series {
    struct series *next;
    char *labels;
    double value;                         /* counter / gauge */
    double sum;                           /* histogram */
    uint64_t count;                       /* histogram */
    uint64_t buckets[METRIC_MAX_BUCKETS]; /* histogram, non-cumulative */
};

struct family {
    struct family *next;
    char *name;
    char *help;
    const char *type; /* "counter", "gauge", "histogram" */
    double bounds[METRIC_MAX_BUCKETS];
    size_t n_bounds;
    struct series *series;
};

struct collector {
    gw_metric_collector_fn fn;
    void *ctx;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct family *families;
static struct collector collectors[METRIC_MAX_COLLECTORS];
static size_t n_collectors;

static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,    1,     2.5,  5,     10};

static struct family *family_get(const char *name, const char *type)
{
    struct family *f;

    for (f = families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->name = gw_strdup(name);
    if (!f->name) {
        free(f);
        return NULL;
    }
    f->type = type;
    if (strcmp(type, "histogram") == 0) {
        f->n_bounds = sizeof latency_bounds / sizeof latency_bounds[0];
        memcpy(f->bounds, latency_bounds, sizeof latency_bounds);
    }
    f->next = families;
    families = f;
    return f;
}

static struct series *series_get(struct family *f, const char *labels)
{
    struct series *s;

    if (!f)
        return NULL;
    for (s = f->series; s; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            return s;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->labels = gw_strdup(labels);
    if (!s->labels) {
        free(s);
        return NULL;
    }
    s->next = f->series;
    f->series = s;
    return s;
}

void gw_metric_add(const char *name, const char *labels, double v)
{
    struct series *s;

    pthread_mutex_lock(&reg_lock);
    s = series_get(family_get(name, "counter"), labels);
    if (s)
        s->value += v;
    pthread_mutex_unlock(&reg_lock);
}

void gw_metric_set(const char *name, const char *labels, double v)
{
    struct series *s;

    pthread_mutex_lock(&reg_lock);
    s = series_get(family_get(name, "gauge"), labels);
    if (s)
        s->value = v;
    pthread_mutex_unlock(&reg_lock);
}

void gw_metric_observe(const char *name, const char *labels, double v)
{
    struct family *f;
    struct series *s;
    size_t i;

    pthread_mutex_lock(&reg_lock);
    f = family_get(name, "histogram");
    s = series_get(f, labels);
    if (s) {
        for (i = 0; i < f->n_bounds && v > f->bounds[i]; i++)
            ;
        if (i < METRIC_MAX_BUCKETS)
            s->buckets[i]++;
        s->sum += v;
        s->count++;
    }
    pthread_mutex_unlock(&reg_lock);
}

void gw_metric_describe(const char *name, const char *type, const char *help)
{
    struct family *f;

    pthread_mutex_lock(&reg_lock);
    f = family_get(name, type);
    if (f && !f->help)
        f->help = gw_strdup(help);
    pthread_mutex_unlock(&reg_lock);
}

void gw_metric_histogram(const char *name, const char *help, const double *bounds, size_t n)
{
    struct family *f;

    if (n > METRIC_MAX_BUCKETS - 1)
        n = METRIC_MAX_BUCKETS - 1; /* the last bucket is +Inf */
    pthread_mutex_lock(&reg_lock);
    f = family_get(name, "histogram");
    if (f && !f->series) {
        memcpy(f->bounds, bounds, n * sizeof *bounds);
        f->n_bounds = n;
    }
    if (f && !f->help)
        f->help = gw_strdup(help);
    pthread_mutex_unlock(&reg_lock);
}

void gw_metric_add_collector(gw_metric_collector_fn fn, void *ctx)
{
    pthread_mutex_lock(&reg_lock);
    if (n_collectors < METRIC_MAX_COLLECTORS)
        collectors[n_collectors++] = (struct collector){fn, ctx};
    pthread_mutex_unlock(&reg_lock);
}

void gw_metric_remove_collector(gw_metric_collector_fn fn, void *ctx)
{
    size_t i;

    pthread_mutex_lock(&reg_lock);
    for (i = 0; i < n_collectors; i++) {
        if (collectors[i].fn == fn && collectors[i].ctx == ctx) {
            collectors[i] = collectors[--n_collectors];
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
}

static void render_labels(struct gw_buf *b, const char *labels, const char *extra)
{
    if (!*labels && !extra)
        return;
    gw_buf_putc(b, '{');
    gw_buf_puts(b, labels);
    if (extra) {
        if (*labels)
            gw_buf_putc(b, ',');
        gw_buf_puts(b, extra);
    }
    gw_buf_putc(b, '}');
}

static void render_histogram(struct gw_buf *b, const struct family *f, const struct series *s)
{
    uint64_t cumulative = 0;
    size_t i;

    for (i = 0; i <= f->n_bounds; i++) {
        char le[48];

        cumulative += s->buckets[i];
        if (i < f->n_bounds)
            snprintf(le, sizeof le, "le=\"%g\"", f->bounds[i]);
        else
            snprintf(le, sizeof le, "le=\"+Inf\"");
        gw_buf_printf(b, "%s_bucket", f->name);
        render_labels(b, s->labels, le);
        gw_buf_printf(b, " %llu\n", (unsigned long long)cumulative);
    }
    gw_buf_printf(b, "%s_sum", f->name);
    render_labels(b, s->labels, NULL);
    gw_buf_printf(b, " %.6f\n%s_count", s->sum, f->name);
    render_labels(b, s->labels, NULL);
    gw_buf_printf(b, " %llu\n", (unsigned long long)s->count);
}

void gw_metrics_render(struct gw_buf *b)
{
    struct collector snapshot[METRIC_MAX_COLLECTORS];
    size_t i, n;
    const struct family *f;
    const struct series *s;

    pthread_mutex_lock(&reg_lock);
    n = n_collectors;
    memcpy(snapshot, collectors, n * sizeof *snapshot);
    pthread_mutex_unlock(&reg_lock);
    for (i = 0; i < n; i++)
        snapshot[i].fn(snapshot[i].ctx);
    pthread_mutex_lock(&reg_lock);
    for (f = families; f; f = f->next) {
        if (f->help)
            gw_buf_printf(b, "# HELP %s %s\n", f->name, f->help);
        gw_buf_printf(b, "# TYPE %s %s\n", f->name, f->type);
        for (s = f->series; s; s = s->next) {
            if (strcmp(f->type, "histogram") == 0) {
                render_histogram(b, f, s);
                continue;
            }
            gw_buf_puts(b, f->name);
            render_labels(b, s->labels, NULL);
            gw_buf_printf(b, " %.17g\n", s->value);
        }
    }
    pthread_mutex_unlock(&reg_lock);
}

void gw_metrics_reset(void)
{
    struct family *f, *fn;
    struct series *s, *sn;

    pthread_mutex_lock(&reg_lock);
    for (f = families; f; f = fn) {
        fn = f->next;
        for (s = f->series; s; s = sn) {
            sn = s->next;
            free(s->labels);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    families = NULL;
    n_collectors = 0;
    pthread_mutex_unlock(&reg_lock);
}
