/* gen_referrals.c -- FHIR NDJSON for `fhir-gateway import`: N referrals of a
 * practice migrating from another system, for make bench-scale.
 *
 *   gen_referrals N [--days D] [--start YYYY-MM-DD]
 *
 * First the referring GPs (Practitioner lines, RPPS identifiers), then for
 * each referral i a transaction Bundle line: its Patient (a distinct INS-NIR
 * with a valid key, created unless known: one referral in ten is a second one
 * for an earlier patient) and its ServiceRequest, whose requester is a
 * conditional reference to the GP by RPPS. Referral i has the placer number
 * scale-%08d (system urn:oid:1.2.250.1.999.1.1), is authored on day
 * i * D / N after the start (D = 1095 days from 2023-01-01 by default), and
 * carries one of eight mapped indications (ICD-10) with its region and side.
 * The output depends on N and the options only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_PRACTITIONERS 200

static const char *const families[] = {"Martin",  "Bernard", "Dubois",  "Thomas",  "Robert",
                                       "Richard", "Petit",   "Durand",  "Leroy",   "Moreau",
                                       "Simon",   "Laurent", "Lefebvre", "Michel", "Garcia",
                                       "David",   "Bertrand", "Roux",   "Vincent", "Fournier"};
static const char *const given_f[] = {"Hélène", "Camille", "Léa", "Chloé", "Manon", "Inès"};
static const char *const given_m[] = {"Lucas", "Hugo", "Louis", "Jules", "Gabriel", "Théo"};

struct indication {
    const char *code, *display, *region, *region_display;
};

static const struct indication indications[] = {
    {"M54.4", "Lumbago with sciatica", "122496007", "Lumbar spine structure"},
    {"M54.5", "Low back pain", "122496007", "Lumbar spine structure"},
    {"M51.1", "Lumbar disc disorder with radiculopathy", "122496007", "Lumbar spine structure"},
    {"M47.8", "Other spondylosis", "122496007", "Lumbar spine structure"},
    {"M48.0", "Spinal stenosis", "122496007", "Lumbar spine structure"},
    {"M54.2", "Cervicalgia", "122494005", "Cervical spine structure"},
    {"M50.1", "Cervical disc disorder with radiculopathy", "122494005",
     "Cervical spine structure"},
    {"M53.3", "Sacrococcygeal disorders", "54735007", "Sacrum structure"},
};

/* A 13-digit NIR for patient k and its key, 97 - (NIR mod 97). */
static void nir(long k, char out[16])
{
    int sex = 1 + (int)(k % 2), yy = 40 + (int)(k / 1000000 % 60), mm = 1 + (int)(k % 12);
    unsigned long long n;

    snprintf(out, 16, "%d%02d%02d75%06ld", sex, yy, mm, k % 1000000);
    n = strtoull(out, NULL, 10);
    snprintf(out + 13, 3, "%02llu", 97 - n % 97);
}

static void practitioner(int k)
{
    printf("{\"resourceType\":\"Practitioner\",\"identifier\":[{\"system\":"
           "\"urn:oid:1.2.250.1.71.4.2.1\",\"value\":\"1%010d\"}],\"name\":[{\"family\":\"%s\","
           "\"given\":[\"%s\"],\"prefix\":[\"Dr\"]}]}\n",
           k, families[k % 20], given_f[k % 6]);
}

/* The Patient entry of a referral's transaction (created unless its INS-NIR is known). */
static void patient_entry(long k, const char *ins)
{
    int sex = 1 + (int)(k % 2);

    printf("{\"fullUrl\":\"urn:uuid:%08lx-0000-4000-8000-000000000001\",\"resource\":"
           "{\"resourceType\":\"Patient\",\"identifier\":[{\"use\":\"official\",\"system\":"
           "\"urn:oid:1.2.250.1.213.1.4.8\",\"value\":\"%s\"}],\"name\":[{\"use\":\"official\","
           "\"family\":\"%s\",\"given\":[\"%s\"]}],\"gender\":\"%s\",\"birthDate\":"
           "\"19%02d-%02d-%02d\",\"address\":[{\"line\":[\"%ld rue Montorgueil\"],\"city\":"
           "\"Paris\",\"postalCode\":\"750%02ld\",\"country\":\"FR\"}]},\"request\":{\"method\":"
           "\"POST\",\"url\":\"Patient\",\"ifNoneExist\":\"identifier="
           "urn:oid:1.2.250.1.213.1.4.8|%s\"}},",
           (unsigned long)k, ins, families[k / 7 % 20], sex == 1 ? given_m[k % 6] : given_f[k % 6],
           sex == 1 ? "male" : "female", 40 + (int)(k / 1000000 % 60), 1 + (int)(k % 12),
           1 + (int)(k % 28), 1 + k % 120, 1 + k % 20, ins);
}

/* One referral: a transaction Bundle of its Patient and ServiceRequest (a
 * conditional reference names the GP: only a transaction may hold one). */
static void referral(long i, long k, const char *ins, int gp, const char *date)
{
    const struct indication *ind = &indications[i % 8];
    int left = (int)(i / 8 % 2);

    printf("{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[");
    patient_entry(k, ins);
    printf("{\"fullUrl\":\"urn:uuid:%08lx-0000-4000-8000-000000000002\",\"resource\":"
           "{\"resourceType\":\"ServiceRequest\",\"identifier\":[{\"system\":"
           "\"urn:oid:1.2.250.1.999.1.1\",\"value\":\"scale-%08ld\"}],\"status\":\"active\","
           "\"intent\":\"order\",\"category\":[{\"coding\":[{\"system\":\"http://snomed.info/sct\","
           "\"code\":\"363679005\",\"display\":\"Imaging\"}]}],\"priority\":\"%s\",\"subject\":"
           "{\"reference\":\"urn:uuid:%08lx-0000-4000-8000-000000000001\"},\"authoredOn\":"
           "\"%sT%02ld:%02ld:00+01:00\",\"requester\":{\"reference\":\"Practitioner?identifier="
           "urn:oid:1.2.250.1.71.4.2.1|1%010d\"},\"reasonCode\":[{\"coding\":[{\"system\":"
           "\"http://hl7.org/fhir/sid/icd-10\",\"code\":\"%s\",\"display\":\"%s\"}],\"text\":"
           "\"%s\"}],\"bodySite\":[{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":"
           "\"%s\",\"display\":\"%s\"},{\"system\":\"http://snomed.info/sct\",\"code\":\"%s\","
           "\"display\":\"%s\"}]}],\"patientInstruction\":\"Venir accompagné, apporter les"
           " imageries antérieures (IRM).\",\"note\":[{\"text\":\"Douleur résistante au traitement"
           " médical bien conduit depuis plus de six semaines (AINS, antalgiques de palier 2,"
           " kinésithérapie). Pas de déficit moteur. Merci de réaliser une infiltration sous"
           " contrôle scopique ou scanographique selon votre appréciation. Pas"
           " d'anticoagulant.\"}]},\"request\":{\"method\":\"POST\",\"url\":\"ServiceRequest\"}}]}\n",
           (unsigned long)i, i, i % 13 ? "routine" : "urgent", (unsigned long)k, date, 8 + i % 10,
           i % 60, gp, ind->code, ind->display, ind->display, ind->region, ind->region_display,
           left ? "7771000" : "24028007", left ? "Left" : "Right");
}

/* The civil date days after y-m-d (proleptic Gregorian). */
static void add_days(int y, int m, int d, long days, char out[11])
{
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    while (days-- > 0) {
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

        if (++d > month_days[m - 1] + (m == 2 && leap)) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
    snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
}

int main(int argc, char **argv)
{
    long n, i, days = 1095, last_day = -1;
    int y = 2023, m = 1, d = 1, k;
    char ins[16], date[11] = "";

    if (argc < 2 || (n = strtol(argv[1], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: gen_referrals N [--days D] [--start YYYY-MM-DD]\n");
        return 2;
    }
    for (k = 2; k + 1 < argc; k += 2) {
        if (strcmp(argv[k], "--days") == 0)
            days = strtol(argv[k + 1], NULL, 10);
        else if (strcmp(argv[k], "--start") != 0 || sscanf(argv[k + 1], "%d-%d-%d", &y, &m, &d) != 3)
            days = -1;
    }
    if (days <= 0 || m < 1 || m > 12 || d < 1 || d > 28) {
        fprintf(stderr, "gen_referrals: --days takes a positive number, --start a date"
                        " (day 1 to 28)\n");
        return 2;
    }
    for (k = 0; k < N_PRACTITIONERS; k++)
        practitioner(k);
    for (i = 0; i < n; i++) {
        long day = i * days / n, who = i % 10 == 9 ? i - 7 : i;

        if (day != last_day) {
            add_days(y, m, d, day, date);
            last_day = day;
        }
        nir(who, ins);
        referral(i, who, ins, (int)(i % N_PRACTITIONERS), date);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
