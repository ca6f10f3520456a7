#!/usr/bin/env python3
"""gen_model.py -- writes gateway/fhir/model_gen.c, the FHIR R4 model as compact C tables.

Usage: gen_model.py DEFS_DIR OUT_FILE    (make model: DEFS_DIR=build/fhir-defs/r4)

DEFS_DIR holds the official R4 definitions: profiles-resources.json, profiles-types.json,
valuesets.json and search-parameters.json, with version.info and SOURCE (the pinned package
they came from, written by tools/fhir-defs.sh) when present. The output holds, for every R4 resource and data
type (and every backbone element inside them), its elements in order with min/max, types
(choice types included), target resource types of references, XML representation flags and
required bindings; the value sets of required bindings expanded to their codes when they are
enumerable from the definitions; the search parameters of the resources the gateway serves.

Every string lives once in one pool (offsets in the tables); the tables are plain integers, so
the file compiles in a few seconds. Only the Python 3 standard library is used.
"""
import json
import os
import sys

# Resources whose search parameters go into the table (plus those of Resource/DomainResource).
SERVED = [
    "Appointment", "AuditEvent", "ConceptMap", "Condition", "DiagnosticReport",
    "DocumentReference", "Observation", "Organization", "Patient", "Practitioner",
    "PractitionerRole", "ServiceRequest", "Subscription", "Task",
]

# Must match enum fhir_prim in gateway/fhir/fhir_int.h (value 0 is "not a primitive").
PRIMS = [
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
    "instant", "integer", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt",
    "uri", "url", "uuid", "xhtml",
]
KIND = {"primitive": 0, "complex": 1, "resource": 2, "backbone": 3}
SP_TYPES = ["number", "date", "string", "token", "reference", "composite", "quantity", "uri",
            "special"]
MAX_MANY = 0xFFFF
NAME_MAX = 96  # FHIR_NAME_MAX in fhir_int.h: element and choice names are shorter
# Element flags, as in fhir_int.h.
EL_CHOICE, EL_XML_ATTR, EL_SUMMARY, EL_MODIFIER, EL_XHTML = 1, 2, 4, 8, 16
TY_SIMPLE_QUANTITY = 0x8000  # high bit of fhir_type_ref.targets
HL7_SD = "http://hl7.org/fhir/StructureDefinition/"
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"


def load(defs, name):
    with open(os.path.join(defs, name), encoding="utf-8") as f:
        return json.load(f)


class Pool:
    """NUL-separated strings, each stored once."""

    def __init__(self):
        self.offsets, self.parts, self.size = {}, [], 0

    def add(self, s):
        if s not in self.offsets:
            self.offsets[s] = self.size
            self.parts.append(s)
            self.size += len(s.encode("utf-8")) + 1
        return self.offsets[s]


def c_string(s):
    out = []
    for b in s.encode("utf-8"):
        ch = chr(b)
        if ch in '"\\' or b < 32 or b > 126 or ch == "?":
            out.append("\\%03o" % b)
        else:
            out.append(ch)
    return '"' + "".join(out) + '\\0"'


class Model:
    def __init__(self, defs):
        res = load(defs, "profiles-resources.json")
        typ = load(defs, "profiles-types.json")
        vsb = load(defs, "valuesets.json")
        self.sps = [e["resource"] for e in load(defs, "search-parameters.json")["entry"]
                    if e["resource"]["resourceType"] == "SearchParameter"]
        self.sds = [e["resource"] for b in (typ, res) for e in b["entry"]
                    if e["resource"]["resourceType"] == "StructureDefinition"
                    and e["resource"].get("kind") != "logical"
                    and e["resource"].get("derivation") != "constraint"]
        self.valuesets = {e["resource"]["url"]: e["resource"] for e in vsb["entry"]
                          if e["resource"]["resourceType"] == "ValueSet"}
        self.codesystems = {e["resource"]["url"]: e["resource"] for e in vsb["entry"]
                            if e["resource"]["resourceType"] == "CodeSystem"}
        self.pool = Pool()
        self.structs = []        # dicts: name, kind, prim, abstract, elems (list of dicts)
        self.struct_index = {}   # name or backbone path -> index
        self.types = []          # (struct index, targets word)
        self.targets = [0]       # uint16 words; 0 is "no list"
        self.target_index = {}
        self.vs = []             # (url, enumerable, [(system, code)])
        self.vs_index = {}
        self.version = res.get("meta", {}).get("lastUpdated", "")

    # ---------------------------------------------------------------- structures
    def declare_structs(self):
        prims = sorted((s for s in self.sds if s["kind"] == "primitive-type"),
                       key=lambda s: PRIMS.index(s["name"]))
        if [s["name"] for s in prims] != PRIMS:
            sys.exit("gen_model: the primitive types differ from enum fhir_prim")
        others = [s for s in self.sds if s["kind"] != "primitive-type"]
        cplx = sorted((s for s in others if s["kind"] == "complex-type"), key=lambda s: s["name"])
        rsrc = sorted((s for s in others if s["kind"] == "resource"), key=lambda s: s["name"])
        self.ordered = prims + cplx + rsrc
        for s in self.ordered:
            kind = {"primitive-type": "primitive", "complex-type": "complex"}.get(s["kind"],
                                                                                   "resource")
            self.new_struct(s["name"], kind, s)
        for s in cplx + rsrc:  # backbone structures get indices after all named types
            for el in s["snapshot"]["element"][1:]:
                if self.has_children(s, el["path"]) and "contentReference" not in el:
                    self.new_struct(el["path"], "backbone", None)

    def new_struct(self, name, kind, sd):
        self.struct_index[name] = len(self.structs)
        self.structs.append({"name": name, "kind": kind, "abstract": bool(sd and sd.get("abstract")),
                             "prim": PRIMS.index(name) + 1 if kind == "primitive" else 0,
                             "elems": []})

    @staticmethod
    def has_children(sd, path):
        cache = sd.setdefault("_parents", None)
        if cache is None:
            cache = {el["path"].rsplit(".", 1)[0] for el in sd["snapshot"]["element"][1:]}
            sd["_parents"] = cache
        return path in cache

    def fill_structs(self):
        for s in self.ordered:
            if s["kind"] == "primitive-type":
                continue
            for el in s["snapshot"]["element"][1:]:
                parent, name = el["path"].rsplit(".", 1)
                self.structs[self.struct_index[parent]]["elems"].append(self.element(s, el, name))

    def element(self, sd, el, name):
        flags = 0
        if name.endswith("[x]"):
            name, flags = name[:-3], flags | EL_CHOICE
        rep = el.get("representation", [])
        if "xmlAttr" in rep:
            flags |= EL_XML_ATTR
        if el.get("isSummary"):
            flags |= EL_SUMMARY
        if el.get("isModifier"):
            flags |= EL_MODIFIER
        first = len(self.types)
        if "contentReference" in el:
            self.types.append((self.struct_index[el["contentReference"].lstrip("#")], 0))
        elif self.has_children(sd, el["path"]):
            self.types.append((self.struct_index[el["path"]], 0))
        else:
            for t in el.get("type", []):
                code = self.type_code(el, t)
                if code == "xhtml":
                    flags |= EL_XHTML
                word = self.target_list(t.get("targetProfile", []))
                if any(p.endswith("/SimpleQuantity") for p in t.get("profile", [])):
                    word |= TY_SIMPLE_QUANTITY
                self.types.append((self.struct_index[code], word))
        if len(self.types) == first:
            sys.exit("gen_model: element %s has no type" % el["path"])
        binding = 0
        b = el.get("binding")
        if b and b.get("strength") == "required" and b.get("valueSet"):
            binding = self.value_set(b["valueSet"].split("|")[0]) + 1
        longest = max(len(self.structs[t[0]]["name"]) for t in self.types[first:])
        if len(name) + 1 + (longest if flags & EL_CHOICE else 0) >= NAME_MAX:
            sys.exit("gen_model: element name %s is too long for FHIR_NAME_MAX" % el["path"])
        mx = MAX_MANY if el["max"] == "*" else int(el["max"])
        return {"name": self.pool.add(name), "first": first, "n": len(self.types) - first,
                "flags": flags, "min": int(el["min"]), "max": mx, "binding": binding}

    @staticmethod
    def type_code(el, t):
        code = t["code"]
        if code.startswith("http://hl7.org/fhirpath/System."):
            if el.get("base", {}).get("path") == "Resource.id":
                return "id"  # the specification's Resource.id is an id (R4 snapshots say string)
            for ext in t.get("extension", []):
                if ext["url"] == FHIR_TYPE_EXT:
                    return ext["valueUrl"]
            sys.exit("gen_model: no FHIR type for %s" % el["path"])
        return code

    def target_list(self, profiles):
        """Index of the list of resource types named by target profiles (0 for none).
        Profiles outside the base specification (a vendor's own types) are left out."""
        names = tuple(sorted({p.rsplit("/", 1)[1] for p in profiles
                              if p.startswith(("/", HL7_SD)) and
                              p.rsplit("/", 1)[1] in self.struct_index}))
        if not names:
            return 0
        if names not in self.target_index:
            self.target_index[names] = len(self.targets)
            self.targets.append(len(names))
            self.targets.extend(self.struct_index[n] for n in names)
        return self.target_index[names]

    # ---------------------------------------------------------------- value sets
    def value_set(self, url):
        if url not in self.vs_index:
            codes = self.expand(url, set())
            self.vs_index[url] = len(self.vs)
            self.vs.append((url, codes is not None, sorted(set(codes or []))))
        return self.vs_index[url]

    def expand(self, url, seen):
        """All (system, code) pairs of a value set, or None when not enumerable here."""
        vs = self.valuesets.get(url)
        if vs is None or url in seen or "compose" not in vs:
            return None
        seen = seen | {url}
        codes = []
        for inc in vs["compose"].get("include", []):
            part = self.expand_include(inc, seen)
            if part is None:
                return None
            codes.extend(part)
        for exc in vs["compose"].get("exclude", []):
            part = self.expand_include(exc, seen)
            if part is None:
                return None
            codes = [c for c in codes if c not in set(part)]
        return codes

    def expand_include(self, inc, seen):
        if "filter" in inc:
            return None
        codes = None
        if "system" in inc:
            system = inc["system"]
            if "concept" in inc:
                codes = [(system, c["code"]) for c in inc["concept"]]
            else:
                cs = self.codesystems.get(system)
                if cs is None or cs.get("content") != "complete":
                    return None
                codes = [(system, c) for c in self.flatten(cs.get("concept", []))]
        for ref in inc.get("valueSet", []):
            part = self.expand(ref.split("|")[0], seen)
            if part is None:
                return None
            codes = part if codes is None else [c for c in codes if c in set(part)]
        return codes

    def flatten(self, concepts):
        for c in concepts:
            yield c["code"]
            yield from self.flatten(c.get("concept", []))

    # ---------------------------------------------------------------- search
    def search_rows(self):
        rows = []
        for sp in self.sps:
            for base in sp.get("base", []):
                if base not in SERVED and base not in ("Resource", "DomainResource"):
                    continue
                expr = self.own_expression(sp.get("expression", ""), base)
                rows.append((self.struct_index[base], sp["code"], SP_TYPES.index(sp["type"]),
                             expr, self.target_list(["/" + t for t in sp.get("target", [])])))
        rows.sort(key=lambda r: (r[0], r[1]))
        return rows

    @staticmethod
    def own_expression(expr, base):
        """The parts of a shared expression that apply to base (A.x | B.y -> B.y for B)."""
        parts = [p.strip() for p in expr.split(" | ")] if expr else []
        mine = [p for p in parts if p.lstrip("(").startswith(base + ".") or p == base]
        return " | ".join(mine) if mine else expr


def fhir_version(defs):
    """FhirVersion from the definitions' version.info, or "R4" when there is none."""
    try:
        with open(os.path.join(defs, "version.info"), encoding="utf-8") as f:
            for line in f:
                if line.startswith("FhirVersion="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "R4"


def source_of(defs):
    """The package the definitions came from (SOURCE, first line), else their folder."""
    try:
        with open(os.path.join(defs, "SOURCE"), encoding="utf-8") as f:
            return f.readline().split(" (")[0].strip()
    except OSError:
        return os.path.basename(os.path.normpath(defs)) + "/"


def emit(m, out_path, defs):
    rows = m.search_rows()
    structs, pool = m.structs, m.pool
    for s in structs:
        s["pname"] = pool.add(s["name"])
    vs_rows, codes = [], []
    for url, enumerable, cl in m.vs:
        vs_rows.append((pool.add(url), len(codes), len(cl), int(enumerable)))
        codes.extend((pool.add(sysu), pool.add(code)) for sysu, code in cl)
    sp_rows = [(r[0], r[2], pool.add(r[1]), pool.add(r[3]), r[4]) for r in rows]
    resources = [s for s in structs if s["kind"] == "resource"]
    elems = []
    for s in structs:
        s["first"] = len(elems)
        elems.extend(s["elems"])
    L = []
    w = L.append
    w("/* model_gen.c -- generated by tools/gen_model.py from the FHIR R4 definitions")
    w(" * (profiles-resources.json, profiles-types.json, valuesets.json, search-parameters.json)")
    w(" * of FHIR %s, from %s." % (fhir_version(defs), source_of(defs)))
    w(" * Do not edit: regenerate with `make model` (tools/fhir-defs.sh pins the package).")
    w(" * Definitions of %s:" % m.version)
    w(" * %d structures, %d elements, %d value sets, %d search parameters. */"
      % (len(structs), len(elems), len(vs_rows), len(sp_rows)))
    w('#include "fhir/fhir_int.h"\n')
    w("/* clang-format off */")
    w("const char fhir_model_pool[] =")
    for p in pool.parts:
        w("    " + c_string(p))
    w("    ;\n")
    w("const struct fhir_struct_def fhir_model_structs[] = {")
    for s in structs:
        w("    {%d, %d, %d, %d, %d, %d}," % (s["pname"], s["first"], len(s["elems"]),
                                            KIND[s["kind"]], s["prim"], int(s["abstract"])))
    w("};\n")
    w("const struct fhir_elem_def fhir_model_elems[] = {")
    for e in elems:
        w("    {%d, %d, %d, %d, %d, %d, %d}," % (e["name"], e["first"], e["n"], e["flags"],
                                                e["min"], e["max"], e["binding"]))
    w("};\n")
    w("const struct fhir_type_ref fhir_model_types[] = {")
    for i in range(0, len(m.types), 8):
        w("    " + " ".join("{%d, %d}," % t for t in m.types[i:i + 8]))
    w("};\n")
    w("const uint16_t fhir_model_targets[] = {")
    for i in range(0, len(m.targets), 16):
        w("    " + " ".join("%d," % t for t in m.targets[i:i + 16]))
    w("};\n")
    w("const struct fhir_vs_def fhir_model_valuesets[] = {")
    for v in vs_rows:
        w("    {%d, %d, %d, %d}," % v)
    w("};\n")
    w("const struct fhir_code_def fhir_model_codes[] = {")
    for i in range(0, len(codes), 6):
        w("    " + " ".join("{%d, %d}," % c for c in codes[i:i + 6]))
    w("};\n")
    w("const struct fhir_sp_def fhir_model_search[] = {")
    for r in sp_rows:
        w("    {%d, %d, %d, %d, %d}," % r)
    w("};\n")
    w("const struct fhir_model fhir_model = {")
    n_prim = sum(1 for s in structs if s["kind"] == "primitive")
    n_cplx = sum(1 for s in structs if s["kind"] == "complex")
    w("    %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d," % (
        pool.size, len(structs), len(elems), len(m.types), len(m.targets), len(vs_rows),
        len(codes), len(sp_rows), len(resources), n_prim, n_cplx))
    w("};")
    w("/* clang-format on */")
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(L) + "\n")
    os.replace(tmp, out_path)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen_model.py DEFS_DIR OUT_FILE")
    m = Model(sys.argv[1])
    m.declare_structs()
    m.fill_structs()
    for s in m.structs:
        if len(s["elems"]) > 0xFFFF:
            sys.exit("gen_model: too many elements in %s" % s["name"])
    if len(m.types) > 0xFFFF or len(m.targets) > 0x7FFF or len(m.structs) > 0xFFFF:
        sys.exit("gen_model: a table outgrew its 16-bit index")
    emit(m, sys.argv[2], sys.argv[1])


if __name__ == "__main__":
    main()
