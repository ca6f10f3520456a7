/* fhir_int.h -- the fhir module's own declarations: the generated model tables, the
 * validation walk's context and the helpers the module's files share. Included only by
 * the .c files of gateway/fhir/ and tests/unit/test_fhir.c.
 */
#ifndef FHIR_INT_H
#define FHIR_INT_H

#include "fhir/fhir.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- the generated model */

/* The primitive types, in the order tools/gen_model.py writes them (it checks the list). */
enum fhir_prim {
    FHIR_PRIM_NONE = 0,
    FHIR_PRIM_BASE64BINARY,
    FHIR_PRIM_BOOLEAN,
    FHIR_PRIM_CANONICAL,
    FHIR_PRIM_CODE,
    FHIR_PRIM_DATE,
    FHIR_PRIM_DATETIME,
    FHIR_PRIM_DECIMAL,
    FHIR_PRIM_ID,
    FHIR_PRIM_INSTANT,
    FHIR_PRIM_INTEGER,
    FHIR_PRIM_MARKDOWN,
    FHIR_PRIM_OID,
    FHIR_PRIM_POSITIVEINT,
    FHIR_PRIM_STRING,
    FHIR_PRIM_TIME,
    FHIR_PRIM_UNSIGNEDINT,
    FHIR_PRIM_URI,
    FHIR_PRIM_URL,
    FHIR_PRIM_UUID,
    FHIR_PRIM_XHTML,
};

enum fhir_kind { FHIR_KIND_PRIMITIVE, FHIR_KIND_COMPLEX, FHIR_KIND_RESOURCE, FHIR_KIND_BACKBONE };

/* A structure: a primitive or complex data type, a resource, or a backbone element
 * ("Bundle.entry"). Its elements are fhir_model_elems[first_elem .. first_elem+n_elems),
 * in the order of the specification (the XML order). */
struct fhir_struct_def {
    uint32_t name; /* pool offset */
    uint16_t first_elem;
    uint16_t n_elems;
    uint8_t kind;     /* enum fhir_kind */
    uint8_t prim;     /* enum fhir_prim, for primitives */
    uint8_t abstract; /* Resource, DomainResource, Element, BackboneElement... */
};

#define FHIR_MAX_MANY 0xFFFF /* max = "*" */

enum {
    FHIR_EL_CHOICE = 1,   /* name is the stem of name[x]: valueQuantity, valueString... */
    FHIR_EL_XML_ATTR = 2, /* an XML attribute (Element.id, Extension.url) */
    FHIR_EL_SUMMARY = 4,  /* in the summary view */
    FHIR_EL_MODIFIER = 8, /* a modifier element */
    FHIR_EL_XHTML = 16,   /* Narrative.div: XHTML in XML, a string in JSON */
};

struct fhir_elem_def {
    uint32_t name;       /* pool offset; the stem for choice elements */
    uint16_t first_type; /* fhir_model_types[first_type .. first_type+n_types) */
    uint8_t n_types;
    uint8_t flags;
    uint16_t min;
    uint16_t max;     /* FHIR_MAX_MANY for "*" */
    uint16_t binding; /* 1 + index in fhir_model_valuesets of a required binding, or 0 */
};

#define FHIR_TY_SIMPLE_QUANTITY 0x8000u /* in targets: the SimpleQuantity profile */

struct fhir_type_ref {
    uint16_t type;    /* structure index */
    uint16_t targets; /* index in fhir_model_targets of [n, type...] (low 15 bits), 0 none */
};

struct fhir_vs_def {
    uint32_t url;
    uint32_t first_code;
    uint32_t n_codes;
    uint8_t enumerable; /* 0: the codes could not be listed from the definitions */
};

struct fhir_code_def {
    uint32_t system;
    uint32_t code;
};

struct fhir_sp_def {
    uint16_t resource; /* structure index of the base (Resource for _id...) */
    uint8_t type;      /* enum fhir_search_type */
    uint32_t name;
    uint32_t expression;
    uint16_t targets;
};

struct fhir_model {
    uint32_t pool_size;
    uint32_t n_structs, n_elems, n_types, n_targets, n_valuesets, n_codes, n_search, n_resources;
    /* structures [0, n_primitives) are the primitives, then n_complex data types, each run
     * sorted by name; the resources follow, sorted by name; then the backbone elements. */
    uint32_t n_primitives, n_complex;
};

extern const char fhir_model_pool[];
extern const struct fhir_struct_def fhir_model_structs[];
extern const struct fhir_elem_def fhir_model_elems[];
extern const struct fhir_type_ref fhir_model_types[];
extern const uint16_t fhir_model_targets[];
extern const struct fhir_vs_def fhir_model_valuesets[];
extern const struct fhir_code_def fhir_model_codes[];
extern const struct fhir_sp_def fhir_model_search[];
extern const struct fhir_model fhir_model;

/* ---------------------------------------------------------------- model queries (model.c) */

#define FHIR_POOL(off) (fhir_model_pool + (off))

const struct fhir_struct_def *fhir_struct_at(unsigned index);
/* A data type or resource by name ("Quantity", "Patient"), or NULL. */
const struct fhir_struct_def *fhir_struct_find(const char *name, size_t len);
/* A concrete (non-abstract) resource by name, or NULL. */
const struct fhir_struct_def *fhir_resource_find(const char *name, size_t len);
const char *fhir_struct_name(const struct fhir_struct_def *s);
unsigned fhir_struct_index(const struct fhir_struct_def *s);
const struct fhir_elem_def *fhir_struct_elem(const struct fhir_struct_def *s, unsigned i);
const char *fhir_elem_name(const struct fhir_elem_def *e);
const struct fhir_type_ref *fhir_elem_type(const struct fhir_elem_def *e, unsigned i);
const struct fhir_struct_def *fhir_type_struct(const struct fhir_type_ref *t);

/* The element a JSON property name designates in s: "status", or "valueQuantity" for the
 * choice value[x] (then *type_out is the type it names; otherwise *type_out is the only
 * type, or NULL when the element has several). Returns NULL for an unknown name. */
const struct fhir_elem_def *fhir_elem_lookup(const struct fhir_struct_def *s, const char *name,
                                             size_t len, const struct fhir_type_ref **type_out);
/* Element names, choice names included ("valueCodeableConcept"), are shorter than this
 * (tools/gen_model.py checks it). */
#define FHIR_NAME_MAX 96

/* Writes the JSON name of choice element e for type t ("value" + "Quantity") into out (size
 * bytes, NUL-terminated). Returns false when it does not fit. */
/* A member of a JSON object with its place in the model: the element its name (without a
 * leading '_') designates in structure s, the type it names, and a rank in the order of
 * the specification: element, then choice type, then the `_name` sibling after the value;
 * members the model does not know rank last (FHIR_RANK_UNKNOWN) and keep their order. */
struct fhir_member {
    const char *key;
    size_t len;
    json_t *v;
    const struct fhir_elem_def *e; /* NULL: unknown */
    const struct fhir_type_ref *t; /* as fhir_elem_lookup() gives it */
    uint64_t rank;
};
#define FHIR_RANK_UNKNOWN     UINT64_MAX
#define FHIR_MEMBERS_ON_STACK 16 /* most objects; a frame stays small at any depth */

/* The index in s of the element of a ranked member, its type's index, whether it is the
 * `_name` sibling. */
#define FHIR_RANK_ELEM(r)  ((unsigned)((r) >> 32))
#define FHIR_RANK_TYPE(r)  ((unsigned)(((r) >> 1) & 0x7FFFFFFFu))
#define FHIR_RANK_UNDER(r) ((bool)((r)&1u))

/* The members of obj in their own order (a resource's resourceType left out when
 * skip_resource_type), each ranked against s (may be NULL: all unknown). Uses stack
 * (FHIR_MEMBERS_ON_STACK entries) when they fit; *n gets their number. NULL when out of
 * memory; otherwise free the result with fhir_members_free(result, stack). */
struct fhir_member *fhir_members(json_t *obj, const struct fhir_struct_def *s,
                                 bool skip_resource_type, struct fhir_member *stack, size_t *n);
/* Sorts members by rank, stably. */
void fhir_members_sort(struct fhir_member *m, size_t n);
void fhir_members_free(struct fhir_member *m, struct fhir_member *stack);
bool fhir_choice_name(char *out, size_t size, const struct fhir_elem_def *e,
                      const struct fhir_type_ref *t);
/* True when a reference to resource type name (len bytes) may stand where t allows
 * (t lists no targets, or lists it, or lists Resource). */
bool fhir_type_allows_target(const struct fhir_type_ref *t, const char *name, size_t len);
/* Appends the allowed target types of t to b, comma separated. */
void fhir_type_targets_text(struct gw_buf *b, const struct fhir_type_ref *t);

const struct fhir_vs_def *fhir_valueset_at(unsigned binding); /* binding as in fhir_elem_def */
/* True when (system, code) is in vs; system NULL matches any system (for code elements). */
bool fhir_valueset_has(const struct fhir_vs_def *vs, const char *system, const char *code);
/* Appends the codes of vs to b ("a, b, c"), at most max codes then "...". */
void fhir_valueset_text(struct gw_buf *b, const struct fhir_vs_def *vs, size_t max);

/* ---------------------------------------------------------------- primitives (primitive.c) */

/* Checks the lexical form of a primitive held as text. Returns NULL when valid, or a static
 * sentence saying what is wrong ("is not a valid date (YYYY, YYYY-MM or YYYY-MM-DD)"). */
const char *fhir_prim_check_text(enum fhir_prim prim, const char *s, size_t len);
/* The name of a primitive type as the specification spells it ("dateTime"). */
const char *fhir_prim_name(enum fhir_prim prim);
/* True for the decimal lexical form (also the JSON number grammar). */
bool fhir_is_decimal_lexeme(const char *s, size_t len);
/* Appends the shortest decimal text that reads back as v (17 significant digits at most). */
void fhir_put_real(struct gw_buf *b, double v);
/* True when s (len bytes) is a valid id: [A-Za-z0-9.-]{1,64}. */
bool fhir_is_id(const char *s, size_t len);

/* ---------------------------------------------------------------- paths (outcome.c) */

/* A FHIRPath being built during a walk: push a segment, pop back to a saved length. */
struct fhir_path {
    struct gw_buf buf;
};

#define FHIR_PATH_MAX      ((size_t)1024 * 1024)
#define FHIR_PATH_NAME_MAX ((size_t)120) /* longer names are cut, with "..." */

void fhir_path_init(struct fhir_path *p, const char *root);
void fhir_path_cleanup(struct fhir_path *p);
/* Appends ".name" (and "[i]" when index >= 0); returns the length to pop back to. */
size_t fhir_path_push(struct fhir_path *p, const char *name, size_t len, long index);
/* As fhir_path_push() for element e (type t) named name in JSON: a choice element reads as
 * FHIRPath spells it, "value.ofType(Quantity)", other elements as their name. */
size_t fhir_path_push_elem(struct fhir_path *p, const char *name, const struct fhir_elem_def *e,
                           const struct fhir_type_ref *t, long index);
void fhir_path_pop(struct fhir_path *p, size_t mark);
const char *fhir_path_text(const struct fhir_path *p);

const char *fhir_severity_name(enum fhir_severity sev);

/* ---------------------------------------------------------------- validation (validate.c) */

/* The resource whose contained resources "#id" references resolve against. */
struct fhir_container {
    json_t *resource;  /* borrowed */
    json_t *contained; /* its contained array (borrowed), or NULL */
    json_t *ids;       /* contained id -> index of its first resource (an object) */
    bool *referenced;  /* one flag per contained resource (dom-3) */
    bool in_contained; /* the walk is inside one of its contained resources */
    size_t current;    /* which one, when in_contained */
    struct fhir_container *outer;
};

struct fhir_vctx {
    json_t *outcome;
    struct fhir_path path;
    int n_errors;
    bool nomem;
    struct fhir_container *container; /* innermost, or NULL */
    json_t *full_urls; /* innermost Bundle's fullUrl -> resourceType (an object), or NULL */
};

/* Adds an issue at the current path (plus ".name" when name is not NULL). */
void fhir_vissue(struct fhir_vctx *v, enum fhir_severity sev, const char *code, const char *name,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Rules beyond the structure walk (rules.c), each at the current path. */
void fhir_check_reference(struct fhir_vctx *v, json_t *ref, const struct fhir_type_ref *t);
void fhir_check_datatype(struct fhir_vctx *v, json_t *obj, const struct fhir_struct_def *s,
                         const struct fhir_type_ref *t);
void fhir_check_contained_item(struct fhir_vctx *v, json_t *res);
void fhir_check_contained_refs(struct fhir_vctx *v, struct fhir_container *c);
void fhir_check_bundle(struct fhir_vctx *v, json_t *bundle);
/* Makes the fullUrl -> resourceType map of a Bundle (a new reference, NULL out of memory). */
json_t *fhir_bundle_urls(json_t *bundle);

/* ---------------------------------------------------------------- XML (xhtml.c) */

/* Parses data with libxml2 as this module always does (see xhtml.c). Returns the document
 * (xmlFreeDoc() it), or NULL with why saying what is wrong; *refused is set when the reason
 * is a DOCTYPE or another declaration, refused before parsing. */
struct _xmlDoc *fhir_xml_read(const char *data, size_t len, struct gw_buf *why, bool *refused);

/* Checks a narrative div as FHIR requires (txt-1, txt-2): well-formed XHTML, root div in
 * the XHTML namespace, no DOCTYPE, no script or form elements, no event attributes, some
 * content. Returns NULL when valid, else a sentence (static storage) saying what is wrong. */
const char *fhir_div_check(const char *s, size_t len);

#define FHIR_NS       "http://hl7.org/fhir"
#define FHIR_XHTML_NS "http://www.w3.org/1999/xhtml"

#endif
