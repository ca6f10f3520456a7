/* id.c -- random identifiers and digests from OpenSSL. */
#include "util/util.h"

#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

enum gw_code gw_uuid(char out[GW_UUID_LEN], struct gw_error *err)
{
    unsigned char b[16];

    if (RAND_bytes(b, sizeof b) != 1)
        return gw_fail(err, GW_E_INTERNAL, "the random generator failed");
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* RFC 9562 version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* variant 10 */
    snprintf(out, GW_UUID_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return GW_OK;
}

/* RFC 9562 version 7: 48 bits of Unix milliseconds, then 74 random bits. */
enum gw_code gw_uuid7(char out[GW_UUID_LEN], struct gw_error *err)
{
    unsigned char b[16];
    uint64_t ms = (uint64_t)gw_now_ms();
    int i;

    if (RAND_bytes(b + 6, 10) != 1)
        return gw_fail(err, GW_E_INTERNAL, "the random generator failed");
    for (i = 5; i >= 0; i--, ms >>= 8)
        b[i] = (unsigned char)(ms & 0xFF);
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x70); /* version 7 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* variant 10 */
    snprintf(out, GW_UUID_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return GW_OK;
}

void gw_sha256_hex(const void *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;

    if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL))
        n = 0;
    for (i = 0; i < n && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * i] = '\0';
}
