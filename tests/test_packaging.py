"""`spacy package` of a trained pipeline: a wheel that installs into another environment and links the same."""

import json
import subprocess
import sys
import zipfile

import pytest
import spacy

from conftest import links

TEXTS = ["Jordan scored for the Bulls last night .", "Paris Hilton visited Paris ."]
LINK_SCRIPT = """
import json, sys, spacy
nlp = spacy.load("en_beer2_test")
linker = nlp.get_pipe("beer2_linker")
out = [[(e.start_char, e.end_char, e.label_, e.kb_id_, round(e._.beer2_score, 5)) for e in d.ents]
       for d in nlp.pipe(json.loads(sys.argv[1]))]
print(json.dumps({"links": out, "kb": len(linker.kb), "aliases": linker.store.aliases is not None,
                  "index": len(linker.store.index), "path": spacy.util.get_package_path("en_beer2_test").as_posix()}))
"""


@pytest.mark.slow
def test_the_packaged_wheel_loads_by_name_elsewhere_and_links_as_its_directory(trained, tmp_path):
    _, _, _, model = trained
    packages = tmp_path / "packages"
    packages.mkdir()
    subprocess.run([sys.executable, "-m", "spacy", "package", str(model), str(packages), "--name", "beer2_test",
                    "--version", "0.0.1", "--build", "wheel", "--force"], check=True, capture_output=True)
    wheel = next(packages.rglob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith("METADATA"))).decode()
        names = zf.namelist()
    assert "Requires-Dist: spacy-beer2" in metadata  # the package pulls in the component's code
    assert any(n.endswith("beer2_linker/entities/kb") for n in names)
    assert any(n.endswith("beer2_linker/entities/index") for n in names)
    venv = tmp_path / "venv"  # another environment: it sees the installed libraries, not the test's files
    # without its own pip and setuptools: the old setuptools a venv gets would shadow the one torch requires
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", str(wheel)], check=True)
    result = subprocess.run([python, "-c", LINK_SCRIPT, json.dumps(TEXTS)], check=True, capture_output=True,
                            text=True, cwd=tmp_path, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    packaged = json.loads(result.stdout.strip().splitlines()[-1])
    assert packaged["path"].startswith(str(venv))
    directory = spacy.load(model)
    assert packaged["kb"] == len(directory.get_pipe("beer2_linker").kb) and packaged["aliases"] is not None
    assert packaged["index"] == len(directory.get_pipe("beer2_linker").store.index)
    assert [[tuple(link) for link in doc] for doc in packaged["links"]] == links(directory, TEXTS)
    assert any(packaged["links"])
