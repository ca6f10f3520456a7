/* test_config.c -- defaults, file, environment and flags in that order, and
 * errors that name the key at fault. Runs from the repository root. */
#include "check.h"
#include "config/config.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/gw-config-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
    static char path[256];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static const char *clients_json =
    "{\"clients\": [{\"name\": \"gp\", \"fingerprint\": "
    "\"0000000000000000000000000000000000000000000000000000000000000000\", \"role\": \"gp\","
    " \"organization\": {\"id\": \"o1\", \"name\": \"Org\"}}]}";

static enum gw_code load(const char *file_text, struct config **out, struct gw_error *err)
{
    struct config_flags flags = {0};
    char text[2048];

    snprintf(text, sizeof text, "{\"clients_file\": \"%s/clients.json\"%s%s}", dir,
             file_text ? ", " : "", file_text ? file_text : "");
    flags.config_file = write_file("gateway.json", text);
    return config_load(&flags, out, err);
}

static void defaults_are_the_development_setup(void)
{
    struct config *cfg = NULL;
    struct gw_error err;

    CHECK_INT(load(NULL, &cfg, &err), GW_OK);
    if (!cfg)
        return;
    CHECK_STR(cfg->listen, "127.0.0.1:8443");
    CHECK_STR(cfg->store, "sqlite:var/gateway.db");
    CHECK_STR(cfg->default_site, "bachaumont");
    CHECK_INT(cfg->n_sites, 2);
    CHECK_STR(config_site_by_identifier(cfg, "urn:oid:1.2.250.1.71.4.2.2", "750000109")->id,
              "drouot");
    CHECK_INT(cfg->n_clients, 1);
    CHECK_STR(cfg->clients[0].org.id, "o1");
    config_destroy(cfg);
}

static void file_then_environment_then_flags(void)
{
    struct config_flags flags = {0};
    struct config *cfg = NULL;
    struct gw_error err;

    setenv("GATEWAY_MAX_BODY_BYTES", "2048", 1);
    setenv("GATEWAY_STORE", "sqlite:/tmp/env.db", 1);
    CHECK_INT(load("\"max_body_bytes\": 4096, \"store\": \"sqlite:/tmp/file.db\"", &cfg, &err),
              GW_OK);
    CHECK_INT(cfg ? cfg->max_body_bytes : 0, 2048);
    config_destroy(cfg);
    flags.config_file = write_file("g2.json", "{\"store\": \"sqlite:/tmp/file.db\"}");
    flags.store = "sqlite:/tmp/flag.db";
    unsetenv("GATEWAY_MAX_BODY_BYTES");
    setenv("GATEWAY_CLIENTS_FILE", write_file("clients.json", clients_json), 1);
    CHECK_INT(config_load(&flags, &cfg, &err), GW_OK);
    CHECK_STR(cfg ? cfg->store : "", "sqlite:/tmp/flag.db");
    config_destroy(cfg);
    unsetenv("GATEWAY_STORE");
    unsetenv("GATEWAY_CLIENTS_FILE");
}

static void errors_name_the_key(void)
{
    struct config *cfg = NULL;
    struct gw_error err;

    CHECK_INT(load("\"colour\": 1", &cfg, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "colour") != NULL);
    CHECK_INT(load("\"max_connections\": 1", &cfg, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "max_connections") != NULL);
    CHECK_INT(load("\"store\": \"mysql://x\"", &cfg, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "store") != NULL);
    CHECK_INT(load("\"default_site\": \"nowhere\"", &cfg, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "nowhere") != NULL);
    CHECK_INT(load("\"sites\": [{\"id\": \"x\"}]", &cfg, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "sites[0]") != NULL);
    CHECK_INT(load("\"listen\": \"nohost\"", &cfg, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "listen") != NULL);
    CHECK(cfg == NULL);
}

static void client_table_rows_are_checked(void)
{
    struct config *cfg = NULL;
    struct gw_error err;

    CHECK_INT(load("\"clients\": [{\"name\": \"r\", \"fingerprint\": \"ABC\", \"role\": \"ris\","
                   " \"organization\": {\"id\": \"x\", \"name\": \"X\"}}]",
                   &cfg, &err),
              GW_E_INPUT);
    CHECK(strstr(err.msg, "fingerprint") != NULL);
    CHECK_INT(load("\"clients\": [{\"name\": \"r\", \"subject\": \"CN=r\", \"role\": \"ris\","
                   " \"organization\": {\"id\": \"x\", \"name\": \"X\"}}]",
                   &cfg, &err),
              GW_E_INPUT);
    CHECK(strstr(err.msg, "sites") != NULL);
    CHECK_INT(load("\"clients\": [{\"name\": \"p\", \"subject\": \"CN=p\", \"role\": \"practice\","
                   " \"organization\": {\"id\": \"x\", \"name\": \"X\"}}]",
                   &cfg, &err),
              GW_E_INPUT);
    CHECK(strstr(err.msg, "a practice client needs \"sites\"") != NULL);
    CHECK_INT(load("\"clients\": [{\"name\": \"p\", \"subject\": \"CN=p\", \"role\": \"practice\","
                   " \"organization\": {\"id\": \"x\", \"name\": \"X\"}, \"sites\": [\"drouot\"]}]",
                   &cfg, &err),
              GW_OK);
    config_destroy(cfg);
    cfg = NULL;
    CHECK_INT(load("\"clients\": [{\"name\": \"r\", \"subject\": \"CN=r\", \"role\": \"root\","
                   " \"organization\": {\"id\": \"x\", \"name\": \"X\"}}]",
                   &cfg, &err),
              GW_E_INPUT);
    CHECK(strstr(err.msg, "root") != NULL);
}

static void mllp_peer_rows_are_checked(void)
{
    struct config *cfg = NULL;
    struct gw_error err;
    const struct config_mllp_peer *m;

    CHECK_INT(load("\"mllp_peers\": [{\"address\": \"10.0.0.5\", \"client\": \"gp\"}]", &cfg, &err),
              GW_E_INPUT);
    CHECK(strstr(err.msg, "not a ris client") != NULL);
    CHECK_INT(load("\"mllp_peers\": [{\"address\": \"ris.example\", \"name\": \"r\","
                   " \"sites\": [\"drouot\"]}]",
                   &cfg, &err),
              GW_E_INPUT);
    CHECK(strstr(err.msg, "numeric") != NULL);
    CHECK_INT(
        load("\"mllp_peers\": [{\"address\": \"10.0.0.5\", \"sites\": [\"drouot\"]}]", &cfg, &err),
        GW_E_INPUT);
    CHECK(strstr(err.msg, "mllp_peers[0]") != NULL);
    CHECK_INT(load("\"mllp_peers\": [{\"address\": \"10.0.0.5\", \"name\": \"r\","
                   " \"sites\": [\"nowhere\"]}]",
                   &cfg, &err),
              GW_E_INPUT);
    CHECK(strstr(err.msg, "nowhere") != NULL);
    CHECK_INT(load("\"mllp_peers\": [{\"address\": \"10.0.0.5\", \"name\": \"drouot-ris\","
                   " \"sites\": [\"drouot\"]}]",
                   &cfg, &err),
              GW_OK);
    m = cfg ? config_mllp_peer_find(cfg, "::ffff:10.0.0.5") : NULL;
    CHECK_STR(m ? m->name : NULL, "drouot-ris");
    CHECK(cfg && !config_mllp_peer_find(cfg, "10.0.0.6"));
    config_destroy(cfg);
}

static void host_and_port_split(void)
{
    char host[64];
    int port = 0;

    CHECK_INT(config_split_hostport("[::1]:8443", host, sizeof host, &port, NULL), GW_OK);
    CHECK_STR(host, "::1");
    CHECK_INT(port, 8443);
    CHECK_INT(config_split_hostport("localhost:99999", host, sizeof host, &port, NULL), GW_E_INPUT);
    CHECK_INT(config_split_hostport(":80", host, sizeof host, &port, NULL), GW_E_INPUT);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    write_file("clients.json", clients_json);
    RUN(defaults_are_the_development_setup);
    RUN(file_then_environment_then_flags);
    RUN(errors_name_the_key);
    RUN(client_table_rows_are_checked);
    RUN(mllp_peer_rows_are_checked);
    RUN(host_and_port_split);
    return check_summary();
}
