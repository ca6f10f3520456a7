/* config.c -- builds and validates struct config.
 *
 * Order: table defaults, then the JSON file, then GATEWAY_* environment
 * variables, then command-line flags. Every key is checked once here, and
 * each error names the key (and file) at fault, so a bad configuration stops
 * the gateway at start instead of surprising it later.
 */
#include "config/config_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char **string_slot(struct config *cfg, const struct option_row *o)
{
    return (char **)((char *)cfg + o->offset);
}

static long *long_slot(struct config *cfg, const struct option_row *o)
{
    return (long *)((char *)cfg + o->offset);
}

enum gw_code config_set_string(char **slot, const char *value, struct gw_error *err)
{
    char *copy = gw_strdup(value);

    if (!copy)
        return gw_fail(err, GW_E_NOMEM, "no memory for configuration");
    free(*slot);
    *slot = copy;
    return GW_OK;
}

/* Sets option o from text (file strings, environment, flags). */
static enum gw_code set_option_text(struct config *cfg, const struct option_row *o,
                                    const char *text, const char *origin, struct gw_error *err)
{
    long v;

    if (o->type == OPT_STRING)
        return config_set_string(string_slot(cfg, o), text, err);
    if (!gw_parse_long(text, o->min, o->max, &v))
        return gw_fail(err, GW_E_INPUT, "%s: %s must be a whole number from %ld to %ld, not \"%s\"",
                       origin, o->name, o->min, o->max, text);
    *long_slot(cfg, o) = v;
    return GW_OK;
}

static enum gw_code set_option_json(struct config *cfg, const struct option_row *o, json_t *v,
                                    const char *origin, struct gw_error *err)
{
    if (o->type == OPT_STRING) {
        if (!json_is_string(v))
            return gw_fail(err, GW_E_INPUT, "%s: %s must be a string", origin, o->name);
        return config_set_string(string_slot(cfg, o), json_string_value(v), err);
    }
    if (!json_is_integer(v) || json_integer_value(v) < o->min || json_integer_value(v) > o->max)
        return gw_fail(err, GW_E_INPUT, "%s: %s must be a whole number from %ld to %ld", origin,
                       o->name, o->min, o->max);
    *long_slot(cfg, o) = (long)json_integer_value(v);
    return GW_OK;
}

static const struct option_row *option_find(const char *name)
{
    size_t i;

    for (i = 0; i < config_n_options; i++)
        if (strcmp(config_options[i].name, name) == 0)
            return &config_options[i];
    return NULL;
}

static enum gw_code apply_defaults(struct config *cfg, struct gw_error *err)
{
    size_t i;

    for (i = 0; i < config_n_options; i++) {
        const struct option_row *o = &config_options[i];

        if (o->type == OPT_LONG)
            *long_slot(cfg, o) = o->def_long;
        else if (config_set_string(string_slot(cfg, o), o->def_string, err))
            return err ? err->code : GW_E_NOMEM;
    }
    return GW_OK;
}

/* Applies the members of a parsed config file. */
static enum gw_code apply_file(struct config *cfg, json_t *root, const char *path,
                               struct gw_error *err)
{
    const char *key;
    json_t *v;
    enum gw_code rc;

    if (!json_is_object(root))
        return gw_fail(err, GW_E_INPUT, "%s: the configuration must be a JSON object", path);
    json_object_foreach (root, key, v) {
        const struct option_row *o = option_find(key);

        if (strcmp(key, "clients") == 0)
            rc = config_parse_clients(cfg, v, path, err);
        else if (strcmp(key, "sites") == 0)
            rc = config_parse_sites(cfg, v, path, err);
        else if (strcmp(key, "mllp_peers") == 0)
            rc = config_parse_mllp_peers(cfg, v, path, err);
        else if (o)
            rc = set_option_json(cfg, o, v, path, err);
        else
            rc = gw_fail(err, GW_E_INPUT, "%s: unknown key \"%s\"", path, key);
        if (rc)
            return rc;
    }
    return GW_OK;
}

static enum gw_code load_json_file(const char *path, json_t **out, struct gw_error *err)
{
    json_error_t jerr;

    *out = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!*out)
        return gw_fail(err, GW_E_INPUT, "%s:%d: %s", path, jerr.line, jerr.text);
    return GW_OK;
}

static enum gw_code apply_environment(struct config *cfg, struct gw_error *err)
{
    size_t i, k;

    for (i = 0; i < config_n_options; i++) {
        char name[96] = "GATEWAY_";
        const char *value;
        enum gw_code rc;

        for (k = 0; config_options[i].name[k] && k + 9 < sizeof name; k++)
            name[8 + k] = (char)toupper((unsigned char)config_options[i].name[k]);
        name[8 + k] = '\0';
        value = getenv(name);
        if (!value)
            continue;
        rc = set_option_text(cfg, &config_options[i], value, name, err);
        if (rc)
            return rc;
    }
    return GW_OK;
}

static enum gw_code apply_flags(struct config *cfg, const struct config_flags *f,
                                struct gw_error *err)
{
    const char *names[] = {"listen", "mllp_listen", "store", "mappings_dir"};
    const char *values[] = {f->listen, f->mllp_listen, f->store, f->mappings_dir};
    size_t i;
    enum gw_code rc;

    for (i = 0; i < 4; i++) {
        if (!values[i])
            continue;
        rc = set_option_text(cfg, option_find(names[i]), values[i], "command line", err);
        if (rc)
            return rc;
    }
    return GW_OK;
}

/* Reads the client table file unless clients were given inline. */
static enum gw_code load_clients_file(struct config *cfg, struct gw_error *err)
{
    json_t *root = NULL, *clients;
    enum gw_code rc;

    if (cfg->n_clients || !*cfg->clients_file)
        return GW_OK;
    rc = load_json_file(cfg->clients_file, &root, err);
    if (rc)
        return rc;
    clients = json_object_get(root, "clients");
    if (!clients)
        rc = gw_fail(err, GW_E_INPUT, "%s: no \"clients\" array", cfg->clients_file);
    else
        rc = config_parse_clients(cfg, clients, cfg->clients_file, err);
    json_decref(root);
    return rc;
}

static enum gw_code load_default_sites(struct config *cfg, struct gw_error *err)
{
    json_t *sites;
    enum gw_code rc;

    if (cfg->n_sites)
        return GW_OK;
    sites = json_loads(config_default_sites, 0, NULL);
    if (!sites)
        return gw_fail(err, GW_E_INTERNAL, "default sites do not parse");
    rc = config_parse_sites(cfg, sites, "default sites", err);
    json_decref(sites);
    return rc;
}

static enum gw_code build(struct config *cfg, const struct config_flags *flags,
                          struct gw_error *err)
{
    json_t *root = NULL;
    enum gw_code rc;

    rc = apply_defaults(cfg, err);
    if (!rc && flags->config_file) {
        rc = load_json_file(flags->config_file, &root, err);
        if (!rc)
            rc = apply_file(cfg, root, flags->config_file, err);
        json_decref(root);
    }
    if (!rc)
        rc = apply_environment(cfg, err);
    if (!rc)
        rc = apply_flags(cfg, flags, err);
    if (!rc)
        rc = load_clients_file(cfg, err);
    if (!rc)
        rc = load_default_sites(cfg, err);
    if (!rc)
        rc = config_validate(cfg, err);
    return rc;
}

enum gw_code config_load(const struct config_flags *flags, struct config **out,
                         struct gw_error *err)
{
    struct config *cfg;
    enum gw_code rc;

    *out = NULL;
    cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return gw_fail(err, GW_E_NOMEM, "no memory for configuration");
    rc = build(cfg, flags, err);
    if (rc) {
        config_destroy(cfg);
        return rc;
    }
    *out = cfg;
    return GW_OK;
}

void config_destroy(struct config *cfg)
{
    size_t i;

    if (!cfg)
        return;
    for (i = 0; i < config_n_options; i++)
        if (config_options[i].type == OPT_STRING)
            free(*string_slot(cfg, &config_options[i]));
    config_free_clients(cfg);
    config_free_sites(cfg);
    config_free_mllp_peers(cfg);
    free(cfg);
}

const struct config_client *config_client_find(const struct config *cfg, const char *name)
{
    size_t i;

    for (i = 0; name && i < cfg->n_clients; i++)
        if (strcmp(cfg->clients[i].name, name) == 0)
            return &cfg->clients[i];
    return NULL;
}

const struct config_mllp_peer *config_mllp_peer_find(const struct config *cfg, const char *address)
{
    size_t i;

    if (address && strncmp(address, "::ffff:", 7) == 0 && strchr(address, '.'))
        address += 7; /* an IPv4-mapped IPv6 address */
    for (i = 0; address && i < cfg->n_mllp_peers; i++)
        if (strcmp(cfg->mllp_peers[i].address, address) == 0)
            return &cfg->mllp_peers[i];
    return NULL;
}

const struct config_site *config_site_find(const struct config *cfg, const char *id)
{
    size_t i;

    for (i = 0; id && i < cfg->n_sites; i++)
        if (strcmp(cfg->sites[i].id, id) == 0)
            return &cfg->sites[i];
    return NULL;
}

const struct config_site *config_site_by_identifier(const struct config *cfg, const char *system,
                                                    const char *value)
{
    size_t i;

    for (i = 0; value && i < cfg->n_sites; i++) {
        const struct config_site *s = &cfg->sites[i];

        if (strcmp(s->org_value, value) == 0 && (!system || strcmp(s->org_system, system) == 0))
            return s;
    }
    return NULL;
}

enum gw_code config_split_hostport(const char *text, char *host, size_t cap, int *port,
                                   struct gw_error *err)
{
    const char *colon = strrchr(text, ':');
    const char *h = text;
    size_t hlen;
    long p;

    if (!colon || !gw_parse_long(colon + 1, 0, 65535, &p))
        return gw_fail(err, GW_E_INPUT, "\"%s\" is not HOST:PORT", text);
    hlen = (size_t)(colon - text);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= cap)
        return gw_fail(err, GW_E_INPUT, "\"%s\": bad host", text);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return GW_OK;
}

void config_describe(struct gw_buf *out)
{
    size_t i;

    for (i = 0; i < config_n_options; i++) {
        const struct option_row *o = &config_options[i];

        if (o->type == OPT_STRING)
            gw_buf_printf(out, "  %-24s %s (default \"%s\")\n", o->name, o->doc, o->def_string);
        else
            gw_buf_printf(out, "  %-24s %s (default %ld, %ld..%ld)\n", o->name, o->doc, o->def_long,
                          o->min, o->max);
    }
}
