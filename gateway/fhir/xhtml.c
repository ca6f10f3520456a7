/* xhtml.c -- the one way this module lets libxml2 read bytes, and the narrative div rules.
 *
 * Promises: fhir_xml_read() refuses any "<!" declaration other than comments and CDATA
 * before libxml2 sees the bytes (so no DTD, no entity, no XXE, no billion laughs), then parses
 * with the network off, no entity substitution, no DTD loading and libxml2's default depth
 * and size bounds, silently (errors come back as text, never on stderr).
 * fhir_div_check() applies R4 txt-1 and txt-2 to a narrative div.
 */
#include "fhir/fhir_int.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

/* The first "<!" that is neither a comment nor CDATA, or NULL. */
static const char *find_declaration(const char *data, size_t len)
{
    const char *p = data, *end = data + len;

    while ((p = memchr(p, '<', (size_t)(end - p))) != NULL) {
        size_t left = (size_t)(end - p);

        if (left >= 2 && p[1] == '!' && !(left >= 4 && memcmp(p, "<!--", 4) == 0) &&
            !(left >= 9 && memcmp(p, "<![CDATA[", 9) == 0))
            return p;
        if (left >= 4 && memcmp(p, "<!--", 4) == 0) { /* skip the comment's text */
            const char *close = NULL, *q;

            for (q = p + 4; q + 3 <= end; q++) {
                if (memcmp(q, "-->", 3) == 0) {
                    close = q;
                    break;
                }
            }
            if (!close)
                return NULL; /* unterminated: libxml2 reports it */
            p = close + 3;
            continue;
        }
        p++;
    }
    return NULL;
}

xmlDoc *fhir_xml_read(const char *data, size_t len, struct gw_buf *why, bool *refused)
{
    xmlParserCtxt *ctxt;
    xmlDoc *doc;
    const xmlError *e;

    *refused = false;
    if (find_declaration(data, len)) {
        *refused = true;
        gw_buf_puts(why, "a DOCTYPE or other <! declaration (DTDs and entities are refused)");
        return NULL;
    }
    if (len > (size_t)INT32_MAX) {
        gw_buf_puts(why, "the document is too large for the XML parser");
        return NULL;
    }
    ctxt = xmlNewParserCtxt();
    if (!ctxt) {
        gw_buf_puts(why, "no memory for an XML parser");
        return NULL;
    }
    doc = xmlCtxtReadMemory(ctxt, data, (int)len, NULL, "UTF-8",
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                XML_PARSE_NOCDATA);
    e = xmlCtxtGetLastError(ctxt);
    if (doc && (doc->intSubset || doc->extSubset || (e && e->level >= XML_ERR_ERROR) ||
                !ctxt->wellFormed)) {
        xmlFreeDoc(doc);
        doc = NULL;
    }
    if (!doc) {
        if (e && e->message)
            gw_buf_printf(why, "line %d: %.*s", e->line, (int)strcspn(e->message, "\n"),
                          e->message);
        else
            gw_buf_puts(why, "not well-formed XML");
    }
    xmlFreeParserCtxt(ctxt);
    return doc;
}

/* ---------------------------------------------------------------- txt-1, txt-2 */

/* R4 txt-1: the basic HTML formatting elements and attributes only. */
static const char *const div_elements[] = {
    "a",   "abbr",     "acronym", "b",     "big",  "blockquote", "br",  "caption", "cite",  "code",
    "col", "colgroup", "dd",      "dfn",   "div",  "dl",         "dt",  "em",      "h1",    "h2",
    "h3",  "h4",       "h5",      "h6",    "hr",   "i",          "img", "li",      "ol",    "p",
    "pre", "q",        "samp",    "small", "span", "strong",     "sub", "sup",     "table", "tbody",
    "td",  "tfoot",    "th",      "thead", "tr",   "tt",         "ul",  "var",     NULL,
};

static const char *const div_attributes[] = {
    "abbr",       "accesskey",   "align",       "alt",        "axis",   "bgcolor", "border",
    "cellhalign", "cellpadding", "cellspacing", "cellvalign", "char",   "charoff", "charset",
    "cite",       "class",       "colspan",     "compact",    "coords", "dir",     "frame",
    "headers",    "height",      "href",        "hreflang",   "hspace", "id",      "lang",
    "longdesc",   "name",        "nowrap",      "rel",        "rev",    "rowspan", "rules",
    "scope",      "shape",       "span",        "src",        "start",  "style",   "summary",
    "tabindex",   "title",       "type",        "valign",     "value",  "vspace",  "width",
    NULL,
};

static bool listed(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return true;
    return false;
}

/* Walks the div's tree; returns the first problem, sets *content for txt-2. */
static const char *walk_div(xmlNode *node, bool *content, int depth)
{
    xmlAttr *a;
    const char *why;

    for (; node; node = node->next) {
        if (node->type == XML_TEXT_NODE || node->type == XML_CDATA_SECTION_NODE) {
            const char *t = (const char *)node->content;

            if (t && t[strspn(t, " \t\r\n")] != '\0')
                *content = true;
            continue;
        }
        if (node->type != XML_ELEMENT_NODE)
            continue;
        if (!node->ns || strcmp((const char *)node->ns->href, FHIR_XHTML_NS) != 0 ||
            !listed(div_elements, (const char *)node->name))
            return "contains an element that txt-1 does not allow (script, form, style, "
                   "iframe, or one outside the XHTML namespace)";
        if (strcmp((const char *)node->name, "img") == 0)
            *content = true;
        for (a = node->properties; a; a = a->next) {
            bool xml_lang =
                a->ns && a->ns->prefix && strcmp((const char *)a->ns->prefix, "xml") == 0;

            if (!xml_lang && (a->ns || !listed(div_attributes, (const char *)a->name)))
                return "has an attribute that txt-1 does not allow (event handlers such as "
                       "onclick, or one outside the basic HTML list)";
        }
        if (depth > 200)
            return "nests too deeply";
        why = walk_div(node->children, content, depth + 1);
        if (why)
            return why;
    }
    return NULL;
}

const char *fhir_div_check(const char *s, size_t len)
{
    struct gw_buf why;
    xmlDoc *doc;
    xmlNode *root;
    const char *problem;
    bool refused, content = false;

    gw_buf_init(&why, 512);
    doc = fhir_xml_read(s, len, &why, &refused);
    gw_buf_cleanup(&why);
    if (!doc)
        return refused ? "has a DOCTYPE or entity declaration (not allowed)"
                       : "is not well-formed XHTML";
    root = xmlDocGetRootElement(doc);
    if (!root || strcmp((const char *)root->name, "div") != 0 || !root->ns ||
        strcmp((const char *)root->ns->href, FHIR_XHTML_NS) != 0)
        problem = "is not a <div> in the XHTML namespace (xmlns=\"http://www.w3.org/1999/xhtml\")";
    else
        problem = walk_div(root, &content, 0);
    if (!problem && !content)
        problem = "has no content (txt-2: some non-whitespace text or an image)";
    xmlFreeDoc(doc);
    return problem;
}
