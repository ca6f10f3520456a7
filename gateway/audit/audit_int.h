/* audit_int.h -- what the audit module's files (and its unit test) share. */
#ifndef GW_AUDIT_INT_H
#define GW_AUDIT_INT_H

#include "audit/audit.h"

/* A coding: system, code, display (NULL: none). */
struct audit_code {
    const char *system, *code, *display;
};

/* event.c: the parts of an AuditEvent both its forms (the tree, the text) are made of. */
struct audit_code audit_type_code(const struct audit_event *ev);
struct audit_code audit_subtype_code(const struct audit_event *ev);
/* AuditEvent.outcome of an outcome ("0", "4", "8", "12"). */
const char *audit_outcome_code(enum audit_outcome outcome);
/* The instance name of AuditEvent.source (audit_set_source()). */
const char *audit_source_name(void);
/* entity.query: text (at most AUDIT_MAX_QUERY bytes of it) in base64 (new string, free()),
 * NULL when out of memory. */
char *audit_query_base64(const char *text);
#define AUDIT_MAX_QUERY 8192
/* The description of an aggregated event's entity. */
void audit_tally_description(const struct audit_tally *t, char *text, size_t cap);

/* text.c: the canonical text of ev's AuditEvent (new string, free()): byte for byte the
 * compact, key-sorted JSON of audit_event_build(ev, id, recorded_ms), written directly.
 * NULL exactly when audit_event_build() gives NULL: a string that is NULL where a value is
 * required, or not UTF-8, or no memory. */
char *audit_event_text(const struct audit_event *ev, const char *id, int64_t recorded_ms);

#endif
