/* id.c -- random identifiers and digests from OpenSSL. */
#include "util/util.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* Random bytes come from RAND_bytes() a block at a time, per thread: one call to the
 * generator serves several identifiers (the process never forks, so no two share them). */
#define ID_RANDOM_BLOCK 256

static _Thread_local unsigned char random_block[ID_RANDOM_BLOCK];
static _Thread_local size_t random_left;

static bool random_bytes(unsigned char *out, size_t n)
{
    if (n > ID_RANDOM_BLOCK)
        return RAND_bytes(out, (int)n) == 1;
    if (random_left < n) {
        if (RAND_bytes(random_block, ID_RANDOM_BLOCK) != 1)
            return false;
        random_left = ID_RANDOM_BLOCK;
    }
    memcpy(out, random_block + ID_RANDOM_BLOCK - random_left, n);
    OPENSSL_cleanse(random_block + ID_RANDOM_BLOCK - random_left, n);
    random_left -= n;
    return true;
}

/* The 8-4-4-4-12 text of b, in lower-case hex. */
static void uuid_text(const unsigned char b[16], char out[GW_UUID_LEN])
{
    static const char hex[] = "0123456789abcdef";
    size_t i, o = 0;

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

enum gw_code gw_uuid(char out[GW_UUID_LEN], struct gw_error *err)
{
    unsigned char b[16];

    if (!random_bytes(b, sizeof b))
        return gw_fail(err, GW_E_INTERNAL, "the random generator failed");
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* RFC 9562 version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* variant 10 */
    uuid_text(b, out);
    return GW_OK;
}

/* RFC 9562 version 7: 48 bits of Unix milliseconds, then 74 random bits. */
enum gw_code gw_uuid7(char out[GW_UUID_LEN], struct gw_error *err)
{
    unsigned char b[16];
    uint64_t ms = (uint64_t)gw_now_ms();
    int i;

    if (!random_bytes(b + 6, 10))
        return gw_fail(err, GW_E_INTERNAL, "the random generator failed");
    for (i = 5; i >= 0; i--, ms >>= 8)
        b[i] = (unsigned char)(ms & 0xFF);
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x70); /* version 7 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* variant 10 */
    uuid_text(b, out);
    return GW_OK;
}

enum gw_code gw_sortable_id(char *out, size_t n, struct gw_error *err)
{
    static const char digits[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    unsigned char random[64];
    uint64_t ms = (uint64_t)gw_now_ms();
    size_t i;

    if (n <= 10 || n >= sizeof random)
        return gw_fail(err, GW_E_INTERNAL, "a sortable id has 11 to 63 characters");
    if (!random_bytes(random, n - 10))
        return gw_fail(err, GW_E_INTERNAL, "the random generator failed");
    for (i = 10; i-- > 0; ms >>= 5)
        out[i] = digits[ms & 31];
    for (i = 10; i < n; i++)
        out[i] = digits[random[i - 10] & 31];
    out[n] = '\0';
    return GW_OK;
}

/* SHA-256 fetched from the provider once: EVP_sha256() is looked up again on every digest. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md; /* kept for the life of the process */

static void fetch_sha256(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void gw_sha256_hex(const void *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;

    pthread_once(&sha256_once, fetch_sha256);
    if (!EVP_Digest(data, len, md, &n, sha256_md ? sha256_md : EVP_sha256(), NULL))
        n = 0;
    for (i = 0; i < n && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * i] = '\0';
}
