/* console.c -- the auditor's console: the HTML, CSS and JavaScript files of
 * console_dir served at /console/ to the auditor role only.
 *
 * The routes are HTTP_PAGE routes: a request without a certificate gets a
 * 401 page, another role a 403 page (the server refuses before this runs).
 * Only plain file names are served: lower-case letters, digits and '-',
 * one dot and a known extension; anything else (dot files, "..", other
 * extensions) is a 404 page, and so is a name that is a symbolic link or
 * not a regular file. Every answer carries a Content-Security-Policy that
 * allows nothing but this origin's own files: no inline script or style,
 * no framing.
 */
#include "rest/rest_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONSOLE_MAX_FILE (4 * 1024 * 1024)
#define CONSOLE_MAX_NAME 64
#define CONSOLE_CSP                                                                                \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                    \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

static const struct {
    const char *ext;
    const char *media_type;
} media_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
};

/* The media type of a servable file name, or NULL when the name is refused. */
static const char *servable(const char *name)
{
    const char *dot = strchr(name, '.');
    size_t i, len = strlen(name);

    if (len == 0 || len > CONSOLE_MAX_NAME || !dot || dot == name || strchr(dot + 1, '.'))
        return NULL;
    for (i = 0; name + i < dot; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '-'))
            return NULL;
    for (i = 0; i < sizeof media_types / sizeof media_types[0]; i++)
        if (strcmp(dot, media_types[i].ext) == 0)
            return media_types[i].media_type;
    return NULL;
}

/* Reads dir/name (a regular file, not a link) into a new buffer. */
static enum gw_code read_console_file(const char *dir, const char *name, char **out, size_t *len,
                                      struct gw_error *err)
{
    char path[4096];
    struct stat st;
    ssize_t got;
    size_t done = 0;
    char *data;
    int fd;

    *out = NULL;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return gw_fail(err, GW_E_LIMIT, "console_dir is too long a path");
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return gw_fail(err, errno == ENOENT || errno == ELOOP ? GW_E_NOTFOUND : GW_E_IO,
                       "cannot read %s", path);
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > CONSOLE_MAX_FILE) {
        close(fd);
        return gw_fail(err, GW_E_NOTFOUND, "%s is not a console file", path);
    }
    data = malloc((size_t)st.st_size + 1);
    if (!data) {
        close(fd);
        return gw_fail(err, GW_E_NOMEM, "no memory for %s", path);
    }
    while (done < (size_t)st.st_size &&
           (got = read(fd, data + done, (size_t)st.st_size - done)) > 0)
        done += (size_t)got;
    close(fd);
    data[done] = '\0';
    *out = data;
    *len = done;
    return GW_OK;
}

static void security_headers(struct http_response *resp)
{
    http_header_add(resp, "Content-Security-Policy", CONSOLE_CSP);
    http_header_add(resp, "X-Frame-Options", "DENY");
    http_header_add(resp, "Referrer-Policy", "no-referrer");
    http_header_add(resp, "Cross-Origin-Opener-Policy", "same-origin");
    http_header_add(resp, "Cross-Origin-Resource-Policy", "same-origin");
    http_header_add(resp, "Permissions-Policy", "camera=(), microphone=(), geolocation=()");
}

void rest_handle_console(struct http_request *req, struct http_response *resp, void *vctx)
{
    struct rest_ctx *ctx = vctx;
    const char *name = req->captures[0], *type;
    struct gw_error err;
    char *data = NULL;
    size_t len = 0;

    if (strcmp(req->path, "/console") == 0) { /* the page's relative links need the slash */
        http_respond_page(resp, 301, "Moved", "The console is at /console/.");
        http_header_add(resp, "Location", "/console/");
        return;
    }
    if (!name || !*name)
        name = "index.html";
    type = servable(name);
    if (!type) {
        http_respond_page(resp, 404, "Not found", "There is no such page in the console.");
        return;
    }
    if (read_console_file(ctx->cfg->console_dir, name, &data, &len, &err) != GW_OK) {
        if (err.code == GW_E_NOTFOUND) {
            http_respond_page(resp, 404, "Not found", "There is no such page in the console.");
        } else {
            gw_log(GW_LOG_ERROR, "console-unreadable", "%s", err.msg);
            http_respond_page(resp, 500, "Console unavailable",
                              "The console's files cannot be read: see the gateway's log.");
        }
        return;
    }
    http_respond_owned(resp, 200, type, data, len);
    security_headers(resp);
}
