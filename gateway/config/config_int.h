/* config_int.h -- the option table shared by config.c and options.c. */
#ifndef GW_CONFIG_INT_H
#define GW_CONFIG_INT_H

#include "config/config.h"

enum option_type { OPT_STRING, OPT_LONG };

struct option_row {
    const char *name; /* JSON key; environment GATEWAY_<NAME upper-cased> */
    enum option_type type;
    size_t offset; /* into struct config */
    const char *def_string;
    long def_long, min, max;
    const char *doc;
};

extern const struct option_row config_options[];
extern const size_t config_n_options;
/* The development sites (DESIGN §8) used when no "sites" are configured. */
extern const char config_default_sites[];

/* config.c */
enum gw_code config_set_string(char **slot, const char *value, struct gw_error *err);
/* tables.c: the client table and the sites, and the final cross-checks. */
enum gw_code config_parse_clients(struct config *cfg, json_t *arr, const char *origin,
                                  struct gw_error *err);
enum gw_code config_parse_sites(struct config *cfg, json_t *arr, const char *origin,
                                struct gw_error *err);
enum gw_code config_parse_mllp_peers(struct config *cfg, json_t *arr, const char *origin,
                                     struct gw_error *err);
enum gw_code config_validate(const struct config *cfg, struct gw_error *err);
void config_free_clients(struct config *cfg);
void config_free_sites(struct config *cfg);
void config_free_mllp_peers(struct config *cfg);
#endif
