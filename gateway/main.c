/* main.c -- the fhir-gateway command line (DESIGN §8): serve, audit verify,
 * audit export, store backup, mappings check, translate, version; signals and
 * wiring.
 *
 * serve: SIGTERM/SIGINT drain requests in flight then exit 0; SIGHUP reloads
 * the client table. Signals are taken synchronously with sigwait() in the
 * main thread, every other thread has them blocked.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "config/config.h"
#include "fhir/fhir.h"
#include "http/http.h"
#include "mapping/mapping.h"
#include "notify/notify.h"
#include "rest/rest.h"
#include "ris/ris.h"
#include "store/store.h"
#include "util/util.h"

#define GATEWAY_VERSION "0.1.0"

struct cli {
    struct config_flags flags;
    const char *since;
    const char *until;
    const char *system;
    const char *code;
    const char *region;
    const char *laterality;
    const char *anchor;
    bool force;
    const char *client;
    const char *batch;
    const char *args[8];
    size_t n_args;
};

static int usage(FILE *f)
{
    struct gw_buf b;

    fprintf(f,
            "usage:\n"
            "  fhir-gateway serve [--config FILE] [--listen HOST:PORT] [--mllp-listen HOST:PORT]\n"
            "                     [--store URL] [--mappings DIR]\n"
            "  fhir-gateway audit verify [--config FILE] [--store URL] [--anchor SEQ:HASH]\n"
            "  fhir-gateway audit export [--config FILE] [--store URL] [--since T] [--until T]\n"
            "  fhir-gateway store backup FILE [--config FILE] [--store URL] [--force]\n"
            "  fhir-gateway mappings check [DIR]\n"
            "  fhir-gateway translate --system URI --code CODE [--region R] [--laterality L]\n"
            "  fhir-gateway import --client NAME [--config FILE] [--store URL] [--mappings DIR]\n"
            "                      [--batch N] FILE.ndjson|-\n"
            "  fhir-gateway version\n\n"
            "configuration keys (JSON file, or environment GATEWAY_<KEY>):\n");
    gw_buf_init(&b, 64 * 1024);
    config_describe(&b);
    if (b.data)
        fputs(b.data, f);
    gw_buf_cleanup(&b);
    return f == stderr ? 2 : 0;
}

/* Reads --flag VALUE pairs and positional words. */
static bool parse_args(int argc, char **argv, struct cli *cli)
{
    static const char *const names[] = {"--config",   "--listen", "--mllp-listen", "--store",
                                        "--mappings", "--since",  "--until",       "--system",
                                        "--code",     "--region", "--laterality",  "--anchor",
                                        "--client",   "--batch"};
    const char **slots[] = {&cli->flags.config_file,
                            &cli->flags.listen,
                            &cli->flags.mllp_listen,
                            &cli->flags.store,
                            &cli->flags.mappings_dir,
                            &cli->since,
                            &cli->until,
                            &cli->system,
                            &cli->code,
                            &cli->region,
                            &cli->laterality,
                            &cli->anchor,
                            &cli->client,
                            &cli->batch};
    int i;
    size_t k;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli->args[0] = "help";
            cli->n_args = 1;
            return true;
        }
        if (strcmp(argv[i], "--force") == 0) {
            cli->force = true;
            continue;
        }
        for (k = 0; k < sizeof names / sizeof names[0]; k++)
            if (strcmp(argv[i], names[k]) == 0)
                break;
        if (k < sizeof names / sizeof names[0]) {
            if (i + 1 >= argc) {
                fprintf(stderr, "fhir-gateway: %s needs a value\n", argv[i]);
                return false;
            }
            *slots[k] = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "fhir-gateway: unknown option %s\n", argv[i]);
            return false;
        } else if (cli->n_args < sizeof cli->args / sizeof cli->args[0]) {
            cli->args[cli->n_args++] = argv[i];
        } else {
            fprintf(stderr, "fhir-gateway: too many arguments\n");
            return false;
        }
    }
    return true;
}

static enum gw_log_level level_of(const char *name)
{
    if (strcmp(name, "debug") == 0)
        return GW_LOG_DEBUG;
    if (strcmp(name, "warn") == 0)
        return GW_LOG_WARN;
    if (strcmp(name, "error") == 0)
        return GW_LOG_ERROR;
    return GW_LOG_INFO;
}

static struct config *load_config(const struct cli *cli)
{
    struct config *cfg = NULL;
    struct gw_error err;

    if (config_load(&cli->flags, &cfg, &err) != GW_OK) {
        fprintf(stderr, "fhir-gateway: configuration: %s\n", err.msg);
        return NULL;
    }
    gw_log_set_level(level_of(cfg->log_level));
    audit_set_source(cfg->instance_id);
    return cfg;
}

/* Records a command-line or life-cycle action in the audit trail. */
static void audit_cli(struct store *st, const char *what, char action, enum gw_code outcome,
                      const char *detail)
{
    struct audit_event ev;
    struct gw_error err;

    memset(&ev, 0, sizeof ev);
    ev.kind = AUDIT_CLI;
    ev.subtype = what;
    ev.action = action;
    ev.outcome = audit_outcome_of(outcome);
    ev.outcome_desc = outcome ? detail : NULL;
    ev.actor_name = "fhir-gateway command line";
    ev.path = detail;
    if (audit_record_alone(st, &ev, &err) != GW_OK)
        gw_log(GW_LOG_ERROR, "audit-failed", "%s", err.msg);
}

struct running {
    struct config *cfg;
    struct map_holder *maps;
    struct store *store;
    struct audit_refusals *refusals;
    struct rest_ctx *rest;
    struct ris *ris;
    struct notify *notify;
    struct auth_table *clients;
    struct http_server *http;
};

static void rest_set_port_cb(void *rest, int port)
{
    rest_set_port(rest, port);
}

static void stop_all(struct running *r)
{
    http_server_stop(r->http);
    notify_destroy(r->notify);
    ris_destroy(r->ris);
    audit_refusals_destroy(r->refusals); /* no refusal comes after the listeners stopped */
    if (r->store)
        audit_cli(r->store, "stop", 'E', GW_OK, "the gateway stopped");
    rest_destroy(r->rest);
    auth_table_destroy(r->clients);
    store_destroy(r->store);
    map_holder_destroy(r->maps);
    config_destroy(r->cfg);
}

/* The RIS side: orders out (pull and push), messages in (MLLP). */
static enum gw_code start_ris(struct running *r, struct gw_error *err)
{
    struct ris_hooks hooks;
    enum gw_code rc;

    rest_ris_hooks(r->rest, &hooks);
    rc = ris_create(r->cfg, r->store, &hooks, &r->ris, err);
    if (rc)
        return rc;
    ris_set_refusals(r->ris, r->refusals);
    rest_set_ris(r->rest, r->ris);
    return ris_start(r->ris, err);
}

/* Subscriptions: the delivery side (its threads start once HTTPS is bound). */
static enum gw_code create_notify(struct running *r, struct gw_error *err)
{
    struct notify_hooks hooks;
    enum gw_code rc;

    rest_notify_hooks(r->rest, &hooks);
    rc = notify_create(r->cfg, r->store, &hooks, &r->notify, err);
    if (!rc)
        rest_set_notify(r->rest, r->notify);
    return rc;
}

static enum gw_code start_all(struct running *r, struct gw_error *err)
{
    struct rest_parts parts;
    struct http_server_config hc;
    enum gw_code rc;

    rc = map_holder_create(r->cfg->mappings_dir, &r->maps, err);
    if (!rc)
        rc = store_open(r->cfg, &r->store, err);
    if (!rc)
        rc = audit_refusals_create(r->store, r->cfg->audit_refusal_period_s, &r->refusals, err);
    if (!rc) {
        parts = (struct rest_parts){
            .cfg = r->cfg, .store = r->store, .maps = r->maps, .refusals = r->refusals};
        rc = rest_create(&parts, &r->rest, err);
    }
    if (!rc)
        rc = start_ris(r, err);
    if (!rc)
        rc = create_notify(r, err);
    if (!rc)
        rc = auth_table_create(r->cfg, &r->clients, err);
    if (rc)
        return rc;
    hc = (struct http_server_config){.cfg = r->cfg,
                                     .handler_ctx = r->rest,
                                     .render = rest_render,
                                     .on_refusal = rest_on_refusal,
                                     .refusal_ctx = r->rest};
    hc.routes = rest_routes(&hc.n_routes);
    hc.on_bound = rest_set_port_cb;
    rc = http_server_start(&hc, r->clients, &r->http, err);
    if (!rc)
        rc = notify_start(r->notify, err);
    if (!rc)
        audit_cli(r->store, "start", 'E', GW_OK, "the gateway started");
    return rc;
}

/* SIGHUP: the mappings again, and a new client table from a freshly read
 * configuration; whatever fails to load keeps the running one. */
static void reload(struct running *r, const struct cli *cli)
{
    struct config *fresh = NULL;
    struct auth_table *clients = NULL;
    struct gw_error err;

    if (map_holder_reload(r->maps, &err) != GW_OK)
        gw_log(GW_LOG_ERROR, "mappings-reload-failed", "kept the loaded mappings: %s", err.msg);
    else
        gw_log(GW_LOG_INFO, "mappings-reloaded", "mappings reloaded");

    if (config_load(&cli->flags, &fresh, &err) != GW_OK ||
        auth_table_create(fresh, &clients, &err) != GW_OK) {
        gw_log(GW_LOG_ERROR, "reload-failed", "kept the running configuration: %s", err.msg);
        config_destroy(fresh);
        return;
    }
    http_server_set_clients(r->http, clients);
    auth_table_destroy(clients);
    if (http_server_reload_tls(r->http, fresh, &err) != GW_OK)
        gw_log(GW_LOG_ERROR, "tls-reload-failed", "kept the TLS files in force: %s", err.msg);
    else
        gw_log(GW_LOG_INFO, "tls-reloaded", "server certificate, key and client CA reloaded");
    if (notify_reload(r->notify, fresh, &err) != GW_OK)
        gw_log(GW_LOG_ERROR, "notify-reload-failed", "kept the Subscription endpoints in force: %s",
               err.msg);
    else
        gw_log(GW_LOG_INFO, "notify-reloaded",
               "Subscription endpoints and client certificate reloaded");
    config_destroy(fresh);
    gw_log(GW_LOG_INFO, "reloaded", "client table reloaded");
}

/* A SIGTERM or SIGINT that came while starting (they are blocked until sigwait()):
 * a start given up on request, e.g. while waiting for PostgreSQL. */
static bool stop_requested(void)
{
    sigset_t pending;

    return sigpending(&pending) == 0 &&
           (sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1);
}

static int serve(const struct cli *cli)
{
    struct running r = {0};
    struct gw_error err;
    sigset_t set;
    json_t *fields;
    int sig = 0;

    r.cfg = load_config(cli);
    if (!r.cfg)
        return 2;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread started later inherits this */
    if (start_all(&r, &err) != GW_OK) {
        if (stop_requested()) {
            gw_log(GW_LOG_INFO, "stopped", "stopped while starting: %s", err.msg);
            stop_all(&r);
            return 0;
        }
        gw_log(GW_LOG_ERROR, "start-failed", "%s", err.msg);
        fprintf(stderr, "fhir-gateway: %s\n", err.msg);
        stop_all(&r);
        return 1;
    }
    fields = json_pack("{s:s, s:i, s:s}", "listen", r.cfg->listen, "port", http_server_port(r.http),
                       "store", store_target(r.store));
    gw_log_fields(GW_LOG_INFO, "listening", fields, "serving HTTPS");
    json_decref(fields);
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
        reload(&r, cli);
    gw_log(GW_LOG_INFO, "stopping", "signal %d: draining", sig);
    stop_all(&r);
    gw_log(GW_LOG_INFO, "stopped", "bye");
    return 0;
}

/* Opens the existing store of cfg (never creating one); NULL after saying why. */
static struct store *open_existing_store(const struct config *cfg, int *status)
{
    struct store *st = NULL;
    struct gw_error err;

    if (strncmp(cfg->store, "sqlite:", 7) == 0 && access(cfg->store + 7, F_OK) != 0) {
        fprintf(stderr, "fhir-gateway: no store at %s\n", cfg->store + 7);
        *status = 2;
        return NULL;
    }
    if (store_open(cfg, &st, &err) != GW_OK) {
        fprintf(stderr, "fhir-gateway: %s\n", err.msg);
        *status = 1;
        return NULL;
    }
    return st;
}

static bool parse_time_arg(const char *text, int64_t *lo)
{
    int64_t hi;

    return !text || gw_time_parse_fhir(text, lo, &hi);
}

static int audit_command(const struct cli *cli)
{
    struct config *cfg;
    struct store *st = NULL;
    struct gw_error err;
    struct audit_verify_result res;
    struct audit_anchor anchor;
    int64_t since = 0, until = 0;
    long n = 0;
    int status = 2;

    if (cli->n_args < 2 || (strcmp(cli->args[1], "verify") && strcmp(cli->args[1], "export")))
        return usage(stderr);
    if (!parse_time_arg(cli->since, &since) || !parse_time_arg(cli->until, &until)) {
        fprintf(stderr, "fhir-gateway: --since/--until take a FHIR date or dateTime\n");
        return 2;
    }
    if (cli->anchor && !audit_anchor_parse(cli->anchor, &anchor)) {
        fprintf(stderr, "fhir-gateway: --anchor takes SEQ:HASH as verify prints it (a sequence "
                        "number, a colon and 64 lower-case hex digits)\n");
        return 2;
    }
    cfg = load_config(cli);
    if (!cfg)
        return 2;
    st = open_existing_store(cfg, &status);
    if (!st) {
        config_destroy(cfg);
        return status;
    }
    if (strcmp(cli->args[1], "verify") == 0) {
        if (audit_verify_anchored(st, cfg->audit_hmac_key, cli->anchor ? &anchor : NULL, &res,
                                  &err) != GW_OK) {
            fprintf(stderr, "fhir-gateway: %s\n", err.msg);
            status = 2;
        } else if (res.intact) {
            printf("audit chain intact: %ld events checked\n", res.checked);
            if (res.last_seq)
                printf("anchor: %lld:%s\n", (long long)res.last_seq, res.last_hash);
            status = 0;
        } else {
            printf("audit chain broken at event %s (sequence %lld): %s\n", res.broken_id,
                   (long long)res.broken_seq, res.reason);
            status = 1;
        }
        audit_cli(st, "audit-verify", 'E', status == 0 ? GW_OK : GW_E_INPUT,
                  status == 0 ? "audit verify" : "audit verify found a broken chain");
    } else {
        if (audit_export(st, since, until, stdout, &n, &err) != GW_OK) {
            fprintf(stderr, "fhir-gateway: %s\n", err.msg);
            status = 1;
        } else {
            fprintf(stderr, "%ld events exported\n", n);
            status = 0;
        }
        audit_cli(st, "audit-export", 'R', status ? GW_E_IO : GW_OK, "audit export");
    }
    store_destroy(st);
    config_destroy(cfg);
    return status;
}

/* store backup FILE: exit 0 with what the copy holds; 1 when the copy failed;
 * 2 for usage, a missing store, or a FILE that exists without --force. */
static int store_command(const struct cli *cli)
{
    struct config *cfg;
    struct store *st;
    struct store_backup_info info;
    struct gw_error err;
    char what[GW_ERROR_MSG_MAX];
    enum gw_code rc;
    int status = 2;

    if (cli->n_args != 3 || strcmp(cli->args[1], "backup") != 0)
        return usage(stderr);
    cfg = load_config(cli);
    if (!cfg)
        return 2;
    st = open_existing_store(cfg, &status);
    if (!st) {
        config_destroy(cfg);
        return status;
    }
    rc = store_backup(st, cli->args[2], cli->force, &info, &err);
    if (rc) {
        fprintf(stderr, "fhir-gateway: store backup: %s\n", err.msg);
        status = rc == GW_E_CONFLICT || rc == GW_E_INPUT ? 2 : 1;
    } else {
        printf("backup written to %s: %lld bytes, schema %d, %lld ms\n", cli->args[2],
               (long long)info.bytes, info.schema_version, (long long)info.elapsed_ms);
        if (info.audit_seq)
            printf("anchor: %lld:%s\n", (long long)info.audit_seq, info.audit_hash);
        status = 0;
    }
    gw_format(what, sizeof what, "store backup to %s", cli->args[2]);
    audit_cli(st, "store-backup", 'R', rc, rc ? err.msg : what);
    store_destroy(st);
    config_destroy(cfg);
    return status;
}

static int mappings_command(const struct cli *cli)
{
    struct map_report report;
    struct gw_error err;
    struct gw_buf b;
    const char *dir = cli->n_args > 2 ? cli->args[2] : "mappings";
    int status;

    if (cli->n_args < 2 || strcmp(cli->args[1], "check") != 0)
        return usage(stderr);
    if (map_check_dir(dir, &report, &err) != GW_OK) {
        fprintf(stderr, "fhir-gateway: %s\n", err.msg);
        return 2;
    }
    gw_buf_init(&b, 16 * 1024 * 1024);
    map_report_print(&report, &b);
    if (b.data)
        fputs(b.data, stdout);
    status = map_report_exit_status(&report);
    gw_buf_cleanup(&b);
    map_report_cleanup(&report);
    return status;
}

static int translate_command(const struct cli *cli)
{
    struct config *cfg = load_config(cli);
    struct map_set *set = NULL;
    struct map_query q = {.system = cli->system, .code = cli->code};
    struct gw_error err;
    struct gw_buf b;
    size_t n;

    if (!cfg)
        return 2;
    if (!cli->system || !cli->code || (cli->region && !map_region_parse(cli->region, &q.region)) ||
        (cli->laterality && !map_laterality_parse(cli->laterality, &q.laterality))) {
        fprintf(stderr, "fhir-gateway: translate needs --system URI --code CODE; --region is "
                        "cervical, thoracic, lumbar or sacral; --laterality left, right or "
                        "bilateral\n");
        config_destroy(cfg);
        return 2;
    }
    if (map_set_load(cfg->mappings_dir, &set, &err) != GW_OK) {
        fprintf(stderr, "fhir-gateway: %s\n", err.msg);
        config_destroy(cfg);
        return 1;
    }
    gw_buf_init(&b, 1024 * 1024);
    n = map_translate_print(set, &q, &b);
    if (b.data)
        fputs(b.data, stdout);
    gw_buf_cleanup(&b);
    map_set_unref(set);
    config_destroy(cfg);
    return n ? 0 : 1;
}

/* ------------------------------------------------------------ import */

/* What an import runs on: the gateway's parts, without its servers. */
struct importer {
    struct config *cfg;
    struct map_holder *maps;
    struct store *store;
    struct rest_ctx *rest;
    struct ris *ris;
    struct auth_table *clients;
    struct auth_identity who;
};

static void importer_cleanup(struct importer *im)
{
    ris_destroy(im->ris);
    rest_destroy(im->rest);
    store_destroy(im->store);
    map_holder_destroy(im->maps);
    auth_identity_cleanup(&im->who);
    auth_table_destroy(im->clients);
    config_destroy(im->cfg);
}

/* The client the data is imported for: a GP organisation of the client table. */
static int import_client(struct importer *im, const char *name)
{
    struct gw_error err;

    if (auth_table_create(im->cfg, &im->clients, &err) != GW_OK ||
        auth_identify_name(im->clients, name, &im->who, &err) != GW_OK) {
        fprintf(stderr, "fhir-gateway: import --client: %s\n", err.msg);
        return 2;
    }
    if (im->who.role != AUTH_GP || !im->who.org_id) {
        fprintf(stderr,
                "fhir-gateway: import --client %s: the client has role %s; imported data belongs"
                " to a GP organisation, so name a client of role gp\n",
                name, auth_role_name(im->who.role));
        return 2;
    }
    return 0;
}

static enum gw_code import_open(struct importer *im, struct gw_error *err)
{
    struct rest_parts parts;
    struct ris_hooks hooks;
    enum gw_code rc = map_holder_create(im->cfg->mappings_dir, &im->maps, err);

    if (!rc)
        rc = store_open(im->cfg, &im->store, err);
    if (rc)
        return rc;
    parts = (struct rest_parts){.cfg = im->cfg, .store = im->store, .maps = im->maps};
    rc = rest_create(&parts, &im->rest, err);
    if (rc)
        return rc;
    rest_ris_hooks(im->rest, &hooks);
    rc = ris_create(im->cfg, im->store, &hooks, &im->ris, err); /* orders: nothing is started */
    if (!rc)
        rest_set_ris(im->rest, im->ris);
    return rc;
}

static void import_failure(void *ctx, long line, int status, const char *text)
{
    (void)ctx;
    fprintf(stderr, "line %ld: %d %s\n", line, status, text);
}

static int import_run(struct importer *im, const char *path, size_t batch)
{
    struct rest_import_stats stats;
    struct gw_error err;
    char detail[300];
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    int64_t started = gw_mono_ms();
    double seconds;
    enum gw_code rc;

    if (!in) {
        fprintf(stderr, "fhir-gateway: import: cannot open %s\n", path);
        return 2;
    }
    rc = rest_import(im->rest, &im->who, in, batch, import_failure, NULL, &stats, &err);
    if (in != stdin)
        fclose(in);
    seconds = (double)(gw_mono_ms() - started) / 1000.0;
    printf("import: %ld lines, %ld imported (%ld already there), %ld failed in %.1f s"
           " (%.0f lines/s)\n",
           stats.lines, stats.imported, stats.matched, stats.failed, seconds,
           seconds > 0 ? (double)stats.lines / seconds : 0.0);
    if (rc)
        fprintf(stderr, "fhir-gateway: import stopped: %s\n", err.msg);
    snprintf(detail, sizeof detail, "import %s for %s: %ld lines, %ld imported, %ld failed", path,
             im->who.client_name, stats.lines, stats.imported, stats.failed);
    audit_cli(im->store, "import", 'C', rc || stats.failed ? GW_E_INPUT : GW_OK, detail);
    return rc || stats.failed ? 1 : 0;
}

/* fhir-gateway import --client NAME [--batch N] FILE.ndjson|-: exit 0 when
 * every line was imported, 1 when some failed (each reported on stderr as
 * "line N: STATUS text"), 2 when the import could not start. */
static int import_command(const struct cli *cli)
{
    struct importer im;
    struct gw_error err;
    long batch = 0;
    int status;

    memset(&im, 0, sizeof im);
    if (cli->n_args != 2 || !cli->client ||
        (cli->batch && !gw_parse_long(cli->batch, 1, 10000, &batch))) {
        fprintf(stderr, "fhir-gateway: import needs --client NAME (a gp client of the client"
                        " table) and one FILE.ndjson, or - for stdin; --batch is 1 to 10000\n");
        return 2;
    }
    im.cfg = load_config(cli);
    if (!im.cfg)
        return 2;
    status = import_client(&im, cli->client);
    if (!status && import_open(&im, &err) != GW_OK) {
        fprintf(stderr, "fhir-gateway: %s\n", err.msg);
        status = 2;
    }
    if (!status)
        status = import_run(&im, cli->args[1], (size_t)batch);
    importer_cleanup(&im);
    return status;
}

int main(int argc, char **argv)
{
    struct cli cli;
    int status;

    memset(&cli, 0, sizeof cli);
    signal(SIGPIPE, SIG_IGN);
    json_object_seed(0); /* before any thread (STYLE: json_t rules) */
    fhir_init();
    if (!parse_args(argc, argv, &cli) || cli.n_args == 0)
        return usage(stderr);
    if (strcmp(cli.args[0], "serve") == 0)
        status = serve(&cli);
    else if (strcmp(cli.args[0], "audit") == 0)
        status = audit_command(&cli);
    else if (strcmp(cli.args[0], "store") == 0)
        status = store_command(&cli);
    else if (strcmp(cli.args[0], "mappings") == 0)
        status = mappings_command(&cli);
    else if (strcmp(cli.args[0], "translate") == 0)
        status = translate_command(&cli);
    else if (strcmp(cli.args[0], "import") == 0)
        status = import_command(&cli);
    else if (strcmp(cli.args[0], "version") == 0)
        status = printf("fhir-gateway %s (FHIR 4.0.1, HL7 v2.5.1)\n", GATEWAY_VERSION) < 0;
    else if (strcmp(cli.args[0], "help") == 0 || strcmp(cli.args[0], "--help") == 0)
        status = usage(stdout);
    else
        status = usage(stderr);
    gw_metrics_reset();
    return status;
}
