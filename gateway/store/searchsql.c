/* searchsql.c -- the SQL of a FHIR search, built so that an index drives it.
 *
 * A search is a UNION of arms; each arm seeks one index and yields the seqs
 * of the versions it finds, with the other conditions tested on each of them
 * by a seek of their own (EXISTS on (seq, parameter)). One condition drives
 * (search_driver()): _id seeks resources' (type, id); an equality (token,
 * reference, uri, :exact, number) seeks (parameter, value, lo, seq), in seq
 * order; a string prefix a value range; a date a range of lo. Without one,
 * the scope drives: resources' (type, owner, seq) for a GP, resource_sites'
 * (site, type) for each site of a RIS. A RIS's scope is otherwise a seek of
 * resource_sites' (site, type, id) per site for each version found (what the
 * site may see: sites.c). _lastUpdated (AuditEvent: date) is a seq range,
 * since commit times grow with seq. Each value of the driver is an arm of its
 * own, so a multi-valued condition still seeks.
 *
 * Snapshots: a version is visible at snapshot S when its seq <= S and no
 * newer version of its resource has a seq <= S. Current versions' entries
 * (search_current) with seq <= S are; so are superseded versions' entries
 * (search_history) whose successor came after S (until > S). The history arms
 * are left out when nothing was committed after S (the first page).
 *
 * Order: the version (commit) order, or the requested sorts then seq. The
 * arms' UNION removes a version found twice (two matching entries). Dates
 * follow FHIR R4 §3.1.1.5.2 with ranges [lo, hi). Nothing here calls SQLite:
 * the text is standard SQL but for CROSS JOIN, which SQLite takes as "this
 * order" and other databases as a plain join.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define DATE_MIN (INT64_MIN / 2)
#define DATE_MAX (INT64_MAX / 2)

enum arm_kind {
    ARM_INDEX_CURRENT, /* search_current i: the driver's entries of current versions */
    ARM_INDEX_HISTORY, /* search_history i: of versions superseded after the snapshot */
    ARM_LIST_CURRENT,  /* resources r (by way of resource_sites s for a RIS's site):
                          scope listing or _id, current versions */
    ARM_LIST_HISTORY,  /* resources r, versions x: the version visible at the snapshot */
    ARM_AUDIT_INDEX,   /* audit_index i */
    ARM_AUDIT_LIST,    /* audit a */
};

struct arm {
    enum arm_kind kind;
    const struct store_cond *driver; /* index arms: the driving cond, and */
    const struct store_value *value; /* the value this arm seeks */
    int64_t width;                   /* date drivers: the widest range of the parameter */
    const char *site;                /* list arms: the site the RIS scope seeks, or NULL */
    bool by_id;                      /* list arms: driven by _id */
};

/* What every arm of one search shares. */
struct plan {
    const struct store_query *q;
    const struct search_bounds *b;
    int driver;  /* cond index, -1 for a listing */
    bool need_r; /* index arms join resources (scope, _id, sort by _id) */
    bool need_v; /* resource arms join versions (_lastUpdated) */
    bool need_a; /* audit index arms join audit (date, _id) */
};

static bool is_column(const struct store_query *q, const struct store_cond *c)
{
    return strcmp(c->param, "_id") == 0 || strcmp(c->param, "_lastUpdated") == 0 ||
           (search_is_audit(q) && strcmp(c->param, "date") == 0);
}

static bool is_time(const struct store_query *q, const char *param)
{
    return strcmp(param, "_lastUpdated") == 0 || (search_is_audit(q) && strcmp(param, "date") == 0);
}

bool search_is_audit(const struct store_query *q)
{
    return strcmp(q->type, "AuditEvent") == 0;
}

/* ------------------------------------------------------------ the driver */

static bool date_prefix_drives(enum store_prefix p)
{
    return p != STORE_NE;
}

/* How well c can drive (0: it cannot). */
static int drive_score(const struct store_query *q, const struct store_cond *c)
{
    size_t k;

    if (c->negate || c->missing || !c->n_values)
        return 0;
    if (strcmp(c->param, "_id") == 0)
        return 100;
    if (is_column(q, c))
        return 0;
    switch (c->kind) {
    case STORE_TOKEN:
        for (k = 0; k < c->n_values; k++)
            if (!c->values[k].value)
                return 0; /* "system|": any code, no value to seek */
        return 80;
    case STORE_STRING:
        if (c->contains)
            return 0;
        if (c->exact)
            return 80;
        for (k = 0; k < c->n_values; k++)
            if (!c->values[k].value || !c->values[k].value[0])
                return 0;
        return 60;
    case STORE_DATE:
        if (search_is_audit(q))
            return 0;
        for (k = 0; k < c->n_values; k++)
            if (!date_prefix_drives(c->values[k].prefix))
                return 0;
        return 40;
    default: /* reference, uri, number */
        for (k = 0; k < c->n_values; k++)
            if (!c->values[k].value && c->kind != STORE_NUMBER)
                return 0;
        return 80;
    }
}

int search_driver(const struct store_query *q)
{
    int best = -1, best_score = 0;
    size_t i;

    for (i = 0; i < q->n_conds; i++) {
        int score = drive_score(q, &q->conds[i]);

        if (score > best_score) {
            best = (int)i;
            best_score = score;
        }
    }
    return best;
}

/* ------------------------------------------------------------ values */

/* The least string greater than every string starting with prefix, or NULL
 * when there is none (an empty prefix, or one of 0xFF bytes). */
static char *prefix_end(const char *prefix)
{
    size_t n = strlen(prefix);
    char *end;

    while (n && (unsigned char)prefix[n - 1] == 0xFF)
        n--;
    if (!n)
        return NULL;
    end = gw_strndup(prefix, n);
    if (end)
        end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
    return end;
}

/* '%text%' with % _ \ escaped for LIKE ... ESCAPE '\'. */
static char *contains_pattern(const char *text)
{
    size_t n = strlen(text), o = 0, i;
    char *out = malloc(2 * n + 3);

    if (!out)
        return NULL;
    out[o++] = '%';
    for (i = 0; i < n; i++) {
        if (text[i] == '%' || text[i] == '_' || text[i] == '\\')
            out[o++] = '\\';
        out[o++] = text[i];
    }
    out[o++] = '%';
    out[o] = '\0';
    return out;
}

/* Range predicate for a date value with a prefix; lo/hi name the row's range. */
static void date_predicate(struct sql *q, const struct store_value *v, const char *lo,
                           const char *hi)
{
    switch (v->prefix) {
    case STORE_NE:
        sql_textf(q, "NOT (%s >= ", lo);
        sql_bind_int(q, v->lo);
        sql_textf(q, " AND %s <= ", hi);
        sql_bind_int(q, v->hi);
        sql_text(q, ")");
        return;
    case STORE_GT: /* some of the row's range lies after the value's */
        sql_textf(q, "%s > ", hi);
        sql_bind_int(q, v->hi);
        return;
    case STORE_LT: /* some of the row's range lies before the value's */
        sql_textf(q, "%s < ", lo);
        sql_bind_int(q, v->lo);
        return;
    case STORE_SA: /* the row starts after the value ends */
        sql_textf(q, "%s >= ", lo);
        sql_bind_int(q, v->hi);
        return;
    case STORE_EB: /* the row ends before the value starts */
        sql_textf(q, "%s <= ", hi);
        sql_bind_int(q, v->lo);
        return;
    default: /* eq, and ge/le as eq-or-beyond */
        sql_textf(q, "((%s >= ", lo);
        sql_bind_int(q, v->lo);
        sql_textf(q, " AND %s <= ", hi);
        sql_bind_int(q, v->hi);
        sql_text(q, ")");
        if (v->prefix == STORE_GE || v->prefix == STORE_LE) {
            sql_textf(q, " OR %s %s ", v->prefix == STORE_GE ? hi : lo,
                      v->prefix == STORE_GE ? ">" : "<");
            sql_bind_int(q, v->prefix == STORE_GE ? v->hi : v->lo);
        }
        sql_text(q, ")");
    }
}

/* The test of one value on the index row alias (search or audit index). */
static void value_predicate(struct sql *q, const char *a, const struct store_cond *c,
                            const struct store_value *v)
{
    switch (c->kind) {
    case STORE_TOKEN:
        sql_text(q, "(");
        if (v->value) {
            sql_textf(q, "%s.value = ", a);
            sql_bind_text(q, v->value);
        } else {
            sql_text(q, "1 = 1");
        }
        if (v->system) {
            sql_textf(q, " AND %s.system = ", a);
            sql_bind_text(q, v->system); /* "" is "no system" */
        }
        sql_text(q, ")");
        return;
    case STORE_STRING:
        if (c->exact) {
            sql_textf(q, "%s.value = ", a);
            sql_bind_text(q, v->value);
        } else if (c->contains) {
            sql_textf(q, "%s.value LIKE ", a);
            sql_bind_owned(q, contains_pattern(v->value ? v->value : ""));
            sql_text(q, " ESCAPE '\\'");
        } else {
            char *end = prefix_end(v->value ? v->value : "");

            sql_textf(q, "(%s.value >= ", a);
            sql_bind_text(q, v->value ? v->value : "");
            if (end) {
                sql_textf(q, " AND %s.value < ", a);
                sql_bind_owned(q, end);
            }
            sql_text(q, ")");
        }
        return;
    case STORE_DATE: {
        char lo[16], hi[16];

        snprintf(lo, sizeof lo, "%s.lo", a);
        snprintf(hi, sizeof hi, "%s.hi", a);
        sql_textf(q, "(%s.value = '' AND ", a);
        date_predicate(q, v, lo, hi);
        sql_text(q, ")");
        return;
    }
    case STORE_NUMBER:
        sql_textf(q, "(%s.value = '' AND %s.lo = ", a, a);
        sql_bind_int(q, v->lo);
        sql_text(q, ")");
        return;
    default: /* reference, uri */
        sql_textf(q, "%s.value = ", a);
        sql_bind_text(q, v->value);
    }
}

static int64_t sat_sub(int64_t a, int64_t b)
{
    if (b > 0 && a < DATE_MIN + b)
        return DATE_MIN;
    return a - b;
}

/* The range of lo a date value needs to look at, given the widest range
 * (width) of the parameter: [*from, *to), either end open when NULL-ish. */
static void date_lo_range(const struct store_value *v, int64_t width, int64_t *from, int64_t *to)
{
    *from = DATE_MIN;
    *to = DATE_MAX;
    switch (v->prefix) {
    case STORE_EQ:
        *from = v->lo;
        *to = v->hi;
        break;
    case STORE_LT:
    case STORE_EB:
        *to = v->lo;
        break;
    case STORE_LE:
        *to = v->hi;
        break;
    case STORE_SA:
        *from = v->hi;
        break;
    case STORE_GT: /* hi > v.hi with hi <= lo + width */
        *from = width >= DATE_MAX ? DATE_MIN : sat_sub(v->hi, width) + 1;
        break;
    case STORE_GE:
        *from = width >= DATE_MAX ? DATE_MIN : sat_sub(v->hi, width) + 1;
        if (v->lo < *from)
            *from = v->lo;
        break;
    default:
        break;
    }
}

/* The seek of the driver's value v on the index alias a (plus its exact test). */
static void driver_seek(struct sql *q, const struct arm *arm, const char *a)
{
    const struct store_cond *c = arm->driver;
    const struct store_value *v = arm->value;
    bool history = arm->kind == ARM_INDEX_HISTORY;
    int64_t from, to;

    if (c->kind == STORE_DATE) {
        sql_textf(q, " AND %s.value = ''", a);
        date_lo_range(v, arm->width, &from, &to);
        if (!history && from > DATE_MIN) {
            sql_textf(q, " AND %s.lo >= ", a);
            sql_bind_int(q, from);
        }
        if (!history && to < DATE_MAX) {
            sql_textf(q, " AND %s.lo < ", a);
            sql_bind_int(q, to);
        }
    } else if (c->kind == STORE_NUMBER) {
        sql_textf(q, " AND %s.value = ''", a);
    } else if (c->kind != STORE_STRING || c->exact) {
        sql_textf(q, " AND %s.value = ", a);
        sql_bind_text(q, v->value);
        if (arm->kind == ARM_INDEX_CURRENT)
            sql_textf(q, " AND %s.lo = 0", a); /* (pid, value, lo, seq): seq order */
    }
    sql_text(q, " AND ");
    value_predicate(q, a, c, v);
}

/* ------------------------------------------------------------ arms */

/* The seq expression of an arm's rows. */
static const char *seq_of(const struct arm *arm)
{
    switch (arm->kind) {
    case ARM_LIST_CURRENT:
        return "r.seq";
    case ARM_LIST_HISTORY:
        return "x.seq";
    case ARM_AUDIT_LIST:
        return "a.seq";
    default:
        return "i.seq";
    }
}

/* The index table an arm's other conditions are tested in. */
static const char *terms_of(const struct arm *arm)
{
    switch (arm->kind) {
    case ARM_INDEX_HISTORY:
    case ARM_LIST_HISTORY:
        return "search_history";
    case ARM_AUDIT_INDEX:
    case ARM_AUDIT_LIST:
        return "audit_index";
    default:
        return "search_current";
    }
}

/* The alias holding the version's time (last_updated / recorded). */
static const char *time_of(const struct arm *arm)
{
    switch (arm->kind) {
    case ARM_LIST_HISTORY:
        return "x.last_updated";
    case ARM_AUDIT_INDEX:
    case ARM_AUDIT_LIST:
        return "a.recorded";
    default:
        return "v.last_updated";
    }
}

static bool is_audit_arm(const struct arm *arm)
{
    return arm->kind == ARM_AUDIT_INDEX || arm->kind == ARM_AUDIT_LIST;
}

static bool has_r(const struct plan *p, const struct arm *arm)
{
    return arm->kind == ARM_LIST_CURRENT || arm->kind == ARM_LIST_HISTORY ||
           ((arm->kind == ARM_INDEX_CURRENT || arm->kind == ARM_INDEX_HISTORY) && p->need_r);
}

static void id_list(struct sql *q, const char *column, const struct store_cond *c)
{
    size_t k;

    sql_textf(q, "%s IN (", column);
    for (k = 0; k < c->n_values; k++) {
        if (k)
            sql_text(q, ", ");
        sql_bind_text(q, c->values[k].value ? c->values[k].value : "");
    }
    sql_text(q, ")");
}

/* One other condition, tested on the arm's version. */
static void filter(struct sql *q, const struct plan *p, const struct arm *arm,
                   const struct store_cond *c)
{
    const char *seq = seq_of(arm), *terms = terms_of(arm);
    int64_t pid = store_param_id(p->q->type, c->param);
    size_t k;

    if (strcmp(c->param, "_id") == 0) {
        sql_text(q, c->negate ? " AND NOT " : " AND ");
        id_list(q, is_audit_arm(arm) ? "a.id" : "r.id", c);
        return;
    }
    if (is_time(p->q, c->param)) {
        const char *t = time_of(arm);
        char end[40];

        snprintf(end, sizeof end, "(%s + 1)", t);
        sql_text(q, " AND (");
        for (k = 0; k < c->n_values; k++) {
            if (k)
                sql_text(q, " OR ");
            date_predicate(q, &c->values[k], t, end);
        }
        sql_text(q, ")");
        return;
    }
    if (c->missing || !c->n_values) {
        sql_textf(q, " AND %sEXISTS (SELECT 1 FROM %s j WHERE j.seq = %s AND j.pid = ",
                  c->missing ? "NOT " : "", terms, seq);
        sql_bind_int(q, pid);
        sql_text(q, ")");
        return;
    }
    sql_text(q, c->negate ? " AND NOT (" : " AND (");
    for (k = 0; k < c->n_values; k++) {
        if (k)
            sql_text(q, " OR ");
        sql_textf(q, "EXISTS (SELECT 1 FROM %s j WHERE j.seq = %s AND j.pid = ", terms, seq);
        sql_bind_int(q, pid);
        sql_text(q, " AND ");
        value_predicate(q, "j", c, &c->values[k]);
        sql_text(q, ")");
    }
    sql_text(q, ")");
}

/* The scope (owner, sites) as tests on r, but for the part the arm seeks.
 * In an _id arm the owner test must not pick resources' owner index over the
 * (type, id) one: SQLite's unary + keeps a column from choosing an index (the
 * one place the text is SQLite's own; elsewhere it is dropped). The sites a
 * RIS serves see what resource_sites grants them: a seek per site. */
static void scope(struct sql *q, const struct plan *p, const struct arm *arm)
{
    const struct store_query *qq = p->q;
    bool list = arm->kind == ARM_LIST_CURRENT || arm->kind == ARM_LIST_HISTORY;
    const char *plus = list && arm->by_id && !q->pg ? "+" : "";
    size_t i;

    if (qq->owner && !(list && !arm->by_id)) {
        sql_textf(q, " AND %sr.owner = ", plus);
        sql_bind_text(q, qq->owner);
    }
    if (qq->sites && !(list && arm->site)) {
        sql_text(q, " AND EXISTS (SELECT 1 FROM resource_sites g WHERE g.site IN (");
        for (i = 0; i < qq->n_sites; i++) {
            if (i)
                sql_text(q, ", ");
            sql_bind_text(q, qq->sites[i]);
        }
        if (!qq->n_sites)
            sql_text(q, "NULL");
        sql_text(q, ") AND g.type = r.type AND g.id = r.id)");
    }
}

/* The sort key k of the arm's version (see order_terms()). */
static void sort_key(struct sql *q, const struct plan *p, const struct arm *arm,
                     const struct store_sort *s)
{
    const char *agg;

    if (strcmp(s->param, "_id") == 0) {
        sql_text(q, is_audit_arm(arm) ? "a.id" : "r.id");
        return;
    }
    if (s->kind == STORE_DATE || s->kind == STORE_NUMBER)
        agg = s->descending ? "MAX(j.hi)" : "MIN(j.lo)";
    else
        agg = s->descending ? "MAX(j.value)" : "MIN(j.value)";
    sql_textf(q, "(SELECT %s FROM %s j WHERE j.seq = %s AND j.pid = ", agg, terms_of(arm),
              seq_of(arm));
    sql_bind_int(q, store_param_id(p->q->type, s->param));
    sql_text(q, ")");
}

/* How many sort keys precede seq: up to the first that orders by itself
 * (_lastUpdated is the seq order; _id is unique among matches). */
static size_t n_sort_keys(const struct plan *p, bool *seq_desc)
{
    size_t i;

    *seq_desc = false;
    for (i = 0; i < p->q->n_sorts; i++) {
        const struct store_sort *s = &p->q->sorts[i];

        if (is_time(p->q, s->param)) {
            *seq_desc = s->descending;
            return i;
        }
        if (strcmp(s->param, "_id") == 0)
            return i + 1;
        if (search_is_audit(p->q))
            return i; /* the audit index has no (seq, parameter) access to sort on */
    }
    return i;
}

static void select_list(struct sql *q, const struct plan *p, const struct arm *arm, bool keys)
{
    bool seq_desc;
    size_t i, n = keys ? n_sort_keys(p, &seq_desc) : 0;

    /* DISTINCT: a version with two matching entries is one match (between
     * arms, UNION sees to it) */
    sql_textf(q, "SELECT DISTINCT %s AS seq", seq_of(arm));
    for (i = 0; i < n; i++) {
        sql_text(q, ", ");
        sort_key(q, p, arm, &p->q->sorts[i]);
        sql_textf(q, " AS k%zu", i + 1);
    }
}

static void seq_bounds(struct sql *q, const struct plan *p, const char *seq, bool snapshot)
{
    if (snapshot) {
        sql_textf(q, " AND %s <= ", seq);
        sql_bind_int(q, p->b->snapshot);
    }
    if (p->b->seq_lo > 0) {
        sql_textf(q, " AND %s >= ", seq);
        sql_bind_int(q, p->b->seq_lo);
    }
    if (p->b->seq_hi < p->b->snapshot) {
        sql_textf(q, " AND %s <= ", seq);
        sql_bind_int(q, p->b->seq_hi);
    }
}

static void index_arm(struct sql *q, const struct plan *p, const struct arm *arm)
{
    bool history = arm->kind == ARM_INDEX_HISTORY;

    sql_text(q, history ? " FROM search_history i" : " FROM search_current i");
    if (p->need_r)
        sql_text(q, " CROSS JOIN resources r");
    if (p->need_v)
        sql_text(q, " CROSS JOIN versions v");
    sql_text(q, " WHERE i.pid = ");
    sql_bind_int(q, store_param_id(p->q->type, arm->driver->param));
    driver_seek(q, arm, "i");
    if (history) {
        sql_text(q, " AND i.until > ");
        sql_bind_int(q, p->b->snapshot);
    }
    seq_bounds(q, p, "i.seq", true);
    if (p->need_r)
        sql_text(q, " AND r.rid = i.rid");
    if (p->need_v)
        sql_text(q, " AND v.seq = i.seq");
}

/* resources r by the scope (or _id); the history arm adds the version x
 * visible at the snapshot of a resource changed since. A RIS site's listing
 * comes from its grants (resource_sites s), in (site, type) order. */
static void list_arm(struct sql *q, const struct plan *p, const struct arm *arm)
{
    bool history = arm->kind == ARM_LIST_HISTORY;

    sql_text(q, arm->site ? " FROM resource_sites s CROSS JOIN resources r" : " FROM resources r");
    if (history)
        sql_text(q, " CROSS JOIN versions x");
    else if (p->need_v)
        sql_text(q, " CROSS JOIN versions v");
    if (arm->site) {
        sql_text(q, " WHERE s.site = ");
        sql_bind_text(q, arm->site);
        sql_text(q, " AND s.type = ");
        sql_bind_text(q, p->q->type);
        sql_text(q, " AND r.type = s.type AND r.id = s.id");
    } else {
        sql_text(q, " WHERE r.type = ");
        sql_bind_text(q, p->q->type);
    }
    if (arm->by_id) {
        sql_text(q, " AND ");
        id_list(q, "r.id", &p->q->conds[p->driver]);
    } else if (!arm->site && p->q->owner) { /* else the site's grants drive */
        sql_text(q, " AND r.owner = ");
        sql_bind_text(q, p->q->owner);
    }
    if (!history) {
        seq_bounds(q, p, "r.seq", true);
        sql_text(q, " AND r.deleted = 0");
        if (p->need_v)
            sql_text(q, " AND v.seq = r.seq");
        return;
    }
    sql_text(q, " AND r.seq > ");
    sql_bind_int(q, p->b->snapshot);
    sql_text(q, " AND x.rid = r.rid AND x.seq = (SELECT MAX(y.seq) FROM versions y"
                " WHERE y.rid = r.rid AND y.seq <= ");
    sql_bind_int(q, p->b->snapshot);
    sql_text(q, ") AND x.deleted = 0");
    seq_bounds(q, p, "x.seq", false);
}

static void audit_arm(struct sql *q, const struct plan *p, const struct arm *arm)
{
    if (arm->kind == ARM_AUDIT_LIST) {
        sql_text(q, " FROM audit a WHERE ");
        if (arm->by_id)
            id_list(q, "a.id", &p->q->conds[p->driver]);
        else
            sql_text(q, "1 = 1");
        seq_bounds(q, p, "a.seq", true);
        return;
    }
    sql_text(q, p->need_a ? " FROM audit_index i CROSS JOIN audit a" : " FROM audit_index i");
    sql_text(q, " WHERE i.pid = ");
    sql_bind_int(q, store_param_id(p->q->type, arm->driver->param));
    driver_seek(q, arm, "i");
    seq_bounds(q, p, "i.seq", true);
    if (p->need_a)
        sql_text(q, " AND a.seq = i.seq");
}

static void arm_sql(struct sql *q, const struct plan *p, const struct arm *arm, bool keys)
{
    size_t i;

    select_list(q, p, arm, keys);
    if (is_audit_arm(arm))
        audit_arm(q, p, arm);
    else if (arm->kind == ARM_INDEX_CURRENT || arm->kind == ARM_INDEX_HISTORY)
        index_arm(q, p, arm);
    else
        list_arm(q, p, arm);
    if (has_r(p, arm))
        scope(q, p, arm);
    for (i = 0; i < p->q->n_conds; i++)
        if ((int)i != p->driver)
            filter(q, p, arm, &p->q->conds[i]);
}

/* ------------------------------------------------------------ the whole */

/* Calls emit for each arm of the search, in order. */
static void each_arm(struct sql *q, const struct plan *p, bool keys, size_t *n_arms)
{
    const struct store_query *qq = p->q;
    const struct store_cond *d = p->driver >= 0 ? &qq->conds[p->driver] : NULL;
    bool by_id = d && strcmp(d->param, "_id") == 0;
    size_t k, n_values = d && !by_id ? d->n_values : 1;
    size_t n_sites = !d && qq->sites && !qq->owner ? qq->n_sites : 1;
    struct arm arm;
    int h;

    *n_arms = 0;
    for (k = 0; k < n_values * n_sites; k++) {
        for (h = 0; h < 2; h++) {
            memset(&arm, 0, sizeof arm);
            if (search_is_audit(qq)) {
                if (h)
                    break; /* the audit log is append-only: no history */
                arm.kind = d && !by_id ? ARM_AUDIT_INDEX : ARM_AUDIT_LIST;
            } else if (d && !by_id) {
                arm.kind = h ? ARM_INDEX_HISTORY : ARM_INDEX_CURRENT;
            } else {
                arm.kind = h ? ARM_LIST_HISTORY : ARM_LIST_CURRENT;
            }
            if (h && p->b->settled)
                break;
            arm.by_id = by_id;
            arm.driver = d;
            arm.value = d && !by_id ? &d->values[k] : NULL;
            arm.width =
                p->b->widths ? p->b->widths[p->driver >= 0 ? p->driver : 0] : SEARCH_WIDTH_UNKNOWN;
            arm.site = !d && qq->sites && !qq->owner && qq->n_sites ? qq->sites[k] : NULL;
            if (*n_arms)
                sql_text(q, " UNION ");
            arm_sql(q, p, &arm, keys);
            (*n_arms)++;
        }
    }
}

static void order_terms(struct sql *q, const struct plan *p, const char *prefix, bool positions)
{
    bool seq_desc;
    size_t i, n = n_sort_keys(p, &seq_desc);

    sql_text(q, " ORDER BY ");
    for (i = 0; i < n; i++) {
        if (positions)
            sql_textf(q, "%zu", i + 2);
        else
            sql_textf(q, "%sk%zu", prefix, i + 1);
        sql_text(q, p->q->sorts[i].descending ? " DESC NULLS LAST, " : " ASC NULLS LAST, ");
    }
    if (positions)
        sql_text(q, seq_desc ? "1 DESC" : "1");
    else
        sql_textf(q, "%sseq%s", prefix, seq_desc ? " DESC" : "");
}

static void plan_init(struct plan *p, const struct store_query *q, const struct search_bounds *b)
{
    bool seq_desc;
    size_t i, n;

    memset(p, 0, sizeof *p);
    p->q = q;
    p->b = b;
    p->driver = search_driver(q);
    p->need_r = q->owner || q->sites;
    for (i = 0; i < q->n_conds; i++) {
        if ((int)i == p->driver)
            continue;
        if (strcmp(q->conds[i].param, "_id") == 0)
            p->need_r = p->need_a = true;
        if (is_time(q, q->conds[i].param))
            p->need_v = p->need_a = true;
    }
    n = n_sort_keys(p, &seq_desc);
    for (i = 0; i < n; i++)
        if (strcmp(q->sorts[i].param, "_id") == 0)
            p->need_r = p->need_a = true;
}

void search_sql_build(const struct store_query *q, const struct search_bounds *b,
                      enum search_part part, struct sql *out)
{
    struct plan p;
    size_t n_arms;

    plan_init(&p, q, b);
    if (part == SEARCH_COUNT) {
        sql_text(out, "SELECT COUNT(*) FROM (");
        each_arm(out, &p, false, &n_arms);
        sql_text(out, ") m");
        return;
    }
    if (search_is_audit(q))
        sql_text(out, "SELECT a.seq, 'AuditEvent', a.id, 1, a.recorded, 0, NULL, NULL, a.json"
                      " FROM (");
    else
        sql_text(out, "SELECT v.seq, r.type, r.id, v.version, v.last_updated, v.deleted,"
                      " r.owner, r.site, v.json FROM (");
    each_arm(out, &p, true, &n_arms);
    order_terms(out, &p, "", true);
    sql_text(out, " LIMIT ");
    /* a cursor's LIMIT keeps the ORDER BY of m (without one, SQLite drops it) */
    sql_bind_int(out, part == SEARCH_PAGE ? (int64_t)q->count + 1 : INT64_MAX);
    if (part == SEARCH_PAGE) {
        sql_text(out, " OFFSET ");
        sql_bind_int(out, (int64_t)q->offset);
    }
    if (search_is_audit(q))
        sql_text(out, ") m CROSS JOIN audit a WHERE a.seq = m.seq");
    else
        sql_text(out, ") m CROSS JOIN versions v CROSS JOIN resources r"
                      " WHERE v.seq = m.seq AND r.rid = v.rid");
    /* A page sorts its few rows again. A cursor takes m's order as m yields it
     * (m, a co-routine, is the outer loop of the CROSS JOIN): sorting every
     * match with its text would cost memory in proportion to an export. */
    if (part == SEARCH_PAGE)
        order_terms(out, &p, "m.", false);
}

void search_time_range(const struct store_cond *c, int64_t *lo, int64_t *hi)
{
    size_t k;

    *lo = DATE_MAX;
    *hi = DATE_MIN;
    for (k = 0; k < c->n_values; k++) {
        const struct store_value *v = &c->values[k];
        int64_t a = DATE_MIN, b = DATE_MAX;

        switch (v->prefix) {
        case STORE_EQ:
            a = v->lo;
            b = v->hi;
            break;
        case STORE_GT:
        case STORE_SA:
            a = v->hi;
            break;
        case STORE_GE:
            a = v->lo;
            break;
        case STORE_LT:
        case STORE_EB:
            b = v->lo;
            break;
        case STORE_LE:
            b = v->hi;
            break;
        default:
            break;
        }
        if (a < *lo)
            *lo = a;
        if (b > *hi)
            *hi = b;
    }
    if (!c->n_values || c->negate) {
        *lo = DATE_MIN;
        *hi = DATE_MAX;
    }
}
