"""Conformance tests for tests/hubserver.py: the unmodified huggingface_hub, datasets and
transformers clients run against it in subprocesses (HF_ENDPOINT is read at import time), and
raw HTTP checks cover what the clients never send (bad hashes, oversized bodies, ...)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.hubserver import Entry, HubServer, client_env, git_blob_sha, lfs_pointer, tree_oids

ROOT = Path(__file__).resolve().parents[1]

# Shared by every client script: `out(**results)` hands results back to the test,
# `error(fn)` describes the exception a call raises.
PRELUDE = """
import json, os, sys, hashlib

def out(**kw):
    print("RESULT " + json.dumps(kw, default=str), flush=True)

def error(fn):
    try:
        fn()
    except Exception as e:
        response = getattr(e, "response", None)
        return {
            "types": [c.__name__ for c in type(e).__mro__],
            "status": getattr(response, "status_code", None),
            "message": str(e),
        }
    return None
"""


@pytest.fixture(scope="module")
def hub():
    # tiny page sizes so the clients must follow the Link-header pagination
    with HubServer(tree_page_size=3, commits_page_size=2) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_server_errors(hub):
    yield
    assert hub.errors == [], "server-side exceptions:\n" + "\n".join(hub.errors)


@pytest.fixture
def run(hub, tmp_path):
    """Run a client script in a fresh interpreter pointed at the server; return its out()."""

    def _run(code: str, **env: str) -> dict:
        full_env = {**os.environ, **client_env(hub.url, tmp_path), **env}
        full_env["OMP_NUM_THREADS"] = "1"
        full_env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.run(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
            env=full_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
        )
        if proc.returncode != 0:
            pytest.fail(f"client script failed\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        results: dict = {}
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                results.update(json.loads(line[len("RESULT ") :]))
        return results

    return _run


def _http(hub, method, path, body=None, headers=None, token=True):
    """A raw request to the server: (status, headers, body)."""
    request = urllib.request.Request(hub.url + path, data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {hub.token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _is_hex40(value: str) -> bool:
    return len(value) == 40 and all(c in "0123456789abcdef" for c in value)


# --------------------------------------------------------------------------------------------
# huggingface_hub


def test_repos_auth_and_visibility(hub, run):
    hub.create_repo("alice/public-model")
    hub.create_repo("alice/secret", private=True)
    r = run(
        """
        from huggingface_hub import HfApi
        api, anon, bad = HfApi(), HfApi(token=False), HfApi(token="wrong-token")
        u1 = api.create_repo("tester/auth-a")
        u2 = api.create_repo("tester/auth-a", exist_ok=True)
        out(
            whoami=api.whoami(),
            url=str(u1), repo_id=u1.repo_id, url_again=str(u2),
            duplicate=error(lambda: api.create_repo("tester/auth-a")),
            org=api.create_repo("framesel-org/auth-b", repo_type="dataset").repo_id,
            no_token=error(lambda: anon.create_repo("tester/auth-c")),
            bad_token=error(lambda: bad.create_repo("tester/auth-c")),
            bad_whoami=error(lambda: bad.whoami()),
            other_ns=error(lambda: api.create_repo("alice/mine")),
            other_ns_exist_ok=error(lambda: api.create_repo("alice/mine", exist_ok=True)),
            other_push=error(lambda: api.upload_file(
                path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/public-model")),
            other_public_read=api.model_info("alice/public-model").id,
            other_private=error(lambda: api.model_info("alice/secret")),
            listed=[m.id for m in api.list_models(author="alice")],
            listed_anon=[m.id for m in anon.list_models(search="secret")],
        )
        api.create_repo("tester/auth-private", private=True)
        api.upload_file(path_or_fileobj=b"hidden", path_in_repo="h.txt",
                        repo_id="tester/auth-private")
        out(
            private_with_token=api.model_info("tester/auth-private").private,
            private_anon_info=error(lambda: anon.model_info("tester/auth-private")),
            private_anon_download=error(
                lambda: anon.hf_hub_download("tester/auth-private", "h.txt")),
            private_anon_exists=anon.repo_exists("tester/auth-private"),
        )
        api.update_repo_settings("tester/auth-private", private=False)
        out(made_public=anon.model_info("tester/auth-private").private)
        api.delete_repo("tester/auth-a")
        api.delete_repo("tester/auth-a", missing_ok=True)
        out(deleted=error(lambda: api.model_info("tester/auth-a")),
            delete_missing=error(lambda: api.delete_repo("tester/auth-a")))
        """
    )
    assert r["whoami"]["name"] == "tester"
    assert [o["name"] for o in r["whoami"]["orgs"]] == ["framesel-org"]
    assert r["url"] == f"{hub.url}/tester/auth-a" == r["url_again"]
    assert r["repo_id"] == "tester/auth-a"
    assert r["duplicate"]["status"] == 409
    assert r["org"] == "framesel-org/auth-b"
    assert hub.repo_exists("framesel-org/auth-b", "dataset")
    assert r["no_token"]["status"] == 401
    assert "Authorization: Bearer" in r["no_token"]["message"]
    assert r["bad_token"]["status"] == 401
    assert "Invalid credentials" in r["bad_token"]["message"]
    assert r["bad_whoami"]["status"] == 401
    for key in ("other_ns", "other_ns_exist_ok", "other_push"):
        assert r[key]["status"] == 403, key
        assert "HfHubHTTPError" in r[key]["types"]
    assert "namespace" in r["other_ns"]["message"]
    assert "write access" in r["other_push"]["message"]
    assert r["other_public_read"] == "alice/public-model"
    assert "RepositoryNotFoundError" in r["other_private"]["types"]
    assert r["listed"] == ["alice/public-model"]  # someone else's private repo is not listed
    assert r["listed_anon"] == []
    assert r["private_with_token"] is True
    assert "RepositoryNotFoundError" in r["private_anon_info"]["types"]
    assert "RepositoryNotFoundError" in r["private_anon_download"]["types"]
    assert r["private_anon_exists"] is False
    assert r["made_public"] is False
    assert "RepositoryNotFoundError" in r["deleted"]["types"]
    assert "RepositoryNotFoundError" in r["delete_missing"]["types"]
    assert not hub.repo_exists("tester/auth-a")


def test_uploads_downloads_and_listings(hub, run, tmp_path):
    folder = tmp_path / "folder"
    (folder / "weights").mkdir(parents=True)
    files = {
        "weights/model.safetensors": os.urandom(3000),
        "weights/notes.txt": b"regular text\n",
        "data.parquet": os.urandom(2500),
        "a.txt": b"alpha",
        "b.txt": b"beta",
    }
    for path, content in files.items():
        (folder / path).write_bytes(content)
    first_request = len(hub.requests)
    r = run(
        f"""
        from huggingface_hub import HfApi, HfFileSystem
        api = HfApi()
        repo = "tester/up"
        api.create_repo(repo)
        first = api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id=repo)
        folder = api.upload_folder(folder_path={str(folder)!r}, repo_id=repo,
                                   commit_message="add folder")
        tree = {{f.path: {{"kind": type(f).__name__, "oid": getattr(f, "blob_id", None),
                 "size": getattr(f, "size", None),
                 "lfs": f.lfs.sha256 if getattr(f, "lfs", None) else None}}
                for f in api.list_repo_tree(repo, recursive=True)}}
        top = [f.path for f in api.list_repo_tree(repo)]
        expanded = {{f.path: f.last_commit.oid for f in api.list_repo_tree(repo, expand=True)}}
        infos = api.get_paths_info(repo, ["a.txt", "weights", "missing.txt"], expand=True)
        downloaded = {{p: open(api.hf_hub_download(repo, p), "rb").read().hex()
                      for p in ["hello.txt", "weights/model.safetensors", "data.parquet"]}}
        fs = HfFileSystem()
        with fs.open(f"{{repo}}/data.parquet", "rb") as f:
            f.seek(1000)
            middle = f.read(300).hex()
        with fs.open(f"{{repo}}/weights/model.safetensors", "rb", block_size=0) as f:
            f.read(2900)  # streaming mode
            tail = f.read().hex()
        # unchanged content: the client skips the commit (preupload oid == local oid)
        again = api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id=repo)
        # LFS object already on the server: the batch answer has no upload action
        copy = api.upload_file(path_or_fileobj={str(folder / "data.parquet")!r},
                               path_in_repo="copy.parquet", repo_id=repo)
        out(first=first.oid, folder=folder.oid, again=again.oid, copy=copy.oid,
            tree=tree, top=top, expanded=expanded,
            infos=[[type(i).__name__, i.path, i.last_commit.oid if i.last_commit else None]
                   for i in infos],
            downloaded=downloaded, middle=middle, tail=tail,
            exists=[api.file_exists(repo, "a.txt"), api.file_exists(repo, "nope.txt"),
                    api.file_exists(repo, "a.txt", revision=first.oid)],
            files=api.list_repo_files(repo),
            commits=[c.commit_id for c in api.list_repo_commits(repo)])
        """
    )
    assert _is_hex40(r["first"]) and _is_hex40(r["folder"])
    assert r["again"] == r["folder"]  # no-op upload: no new commit
    assert r["copy"] != r["folder"]
    assert r["commits"] == [r["copy"], r["folder"], r["first"], hub.commit_ids("tester/up")[-1]]
    tree = r["tree"]
    for path in ("weights/model.safetensors", "data.parquet"):
        assert tree[path]["lfs"] == hashlib.sha256(files[path]).hexdigest()
        assert tree[path]["size"] == len(files[path])
    for path in ("weights/notes.txt", "a.txt", "b.txt"):
        assert tree[path]["lfs"] is None
        assert tree[path]["oid"] == git_blob_sha(files[path])
    assert tree["weights"]["kind"] == "RepoFolder"
    assert sorted(r["top"]) == [
        ".gitattributes",
        "a.txt",
        "b.txt",
        "data.parquet",
        "hello.txt",
        "weights",
    ]
    assert r["expanded"] == {p: r["first" if p == "hello.txt" else "folder"] for p in r["top"]} | {
        ".gitattributes": hub.commit_ids("tester/up")[-1]
    }
    assert r["infos"] == [
        ["RepoFile", "a.txt", r["folder"]],
        ["RepoFolder", "weights", r["folder"]],
    ]
    assert bytes.fromhex(r["downloaded"]["hello.txt"]) == b"hello"
    for path in ("weights/model.safetensors", "data.parquet"):
        assert bytes.fromhex(r["downloaded"][path]) == files[path]
    assert bytes.fromhex(r["middle"]) == files["data.parquet"][1000:1300]
    assert bytes.fromhex(r["tail"]) == files["weights/model.safetensors"][2900:]
    assert r["exists"] == [True, False, False]
    assert r["files"] == sorted(
        [".gitattributes", "hello.txt", "copy.parquet", *files], key=lambda p: p
    )
    assert hub.read_file("tester/up", "data.parquet") == files["data.parquet"]
    requests = list(hub.requests)[first_request:]
    # each LFS object was PUT once: the copy of data.parquet's content needed no upload
    puts = sorted(p.split("/")[2].split("?")[0] for m, p, _ in requests if m == "PUT")
    lfs_paths = ["weights/model.safetensors", "data.parquet"]
    assert puts == sorted(hashlib.sha256(files[p]).hexdigest() for p in lfs_paths)
    # a Range read was answered with 206
    assert any(m == "GET" and s == 206 and "data.parquet" in p for m, p, s in requests)


def test_commits_refs_and_errors(hub, run):
    r = run(
        """
        import os
        from huggingface_hub import (HfApi, CommitOperationAdd, CommitOperationCopy,
                                     CommitOperationDelete, HfFileSystem)
        api = HfApi()
        repo = "tester/refs"
        api.create_repo(repo)
        c1 = api.create_commit(repo, commit_message="one", operations=[
            CommitOperationAdd("keep.txt", b"v1"), CommitOperationAdd("dir/a.txt", b"a"),
            CommitOperationAdd("dir/b.bin", b"b" * 100), CommitOperationAdd("gone.txt", b"x")]).oid
        api.create_tag(repo, tag="v1", tag_message="first")
        dup_tag = error(lambda: api.create_tag(repo, tag="v1"))
        api.create_tag(repo, tag="v1", exist_ok=True)
        c2 = api.create_commit(repo, commit_message="two", commit_description="details",
                               operations=[CommitOperationCopy("dir/b.bin", "copied.bin"),
                                           CommitOperationCopy("dir/a.txt", "copied.txt"),
                                           CommitOperationAdd("keep.txt", b"v2"),
                                           CommitOperationDelete("gone.txt"),
                                           CommitOperationDelete("dir/")]).oid
        stale = error(lambda: api.create_commit(
            repo, commit_message="stale", parent_commit=c1,
            operations=[CommitOperationAdd("x.txt", b"x")]))
        api.create_branch(repo, branch="feature", revision="v1")
        dup_branch = error(lambda: api.create_branch(repo, branch="feature"))
        c3 = api.upload_file(path_or_fileobj=b"f", path_in_repo="f.txt", repo_id=repo,
                             revision="feature").oid
        pr = api.upload_file(path_or_fileobj=b"p", path_in_repo="p.txt", repo_id=repo,
                             create_pr=True)
        refs = api.list_repo_refs(repo, include_pull_requests=True)
        commits = api.list_repo_commits(repo)
        snap_v1 = api.snapshot_download(repo, revision="v1")
        snap_main = api.snapshot_download(repo)
        fs = HfFileSystem()
        out(
            c1=c1, c2=c2, c3=c3, dup_tag=dup_tag, dup_branch=dup_branch, stale=stale,
            branches={b.name: b.target_commit for b in refs.branches},
            tags={t.name: t.target_commit for t in refs.tags},
            prs={p.name: p.target_commit for p in refs.pull_requests},
            pr_revision=pr.pr_revision, pr_oid=pr.oid,
            commits=[[c.commit_id, c.title, c.message] for c in commits],
            feature_commits=[c.commit_id for c in api.list_repo_commits(repo, revision="feature")],
            main_files=api.list_repo_files(repo),
            v1_files=api.list_repo_files(repo, revision="v1"),
            pr_file=open(api.hf_hub_download(repo, "p.txt", revision=pr.pr_revision)).read(),
            pr_fs=fs.read_text(f"{repo}/p.txt", revision=pr.pr_revision),
            sha_file=open(api.hf_hub_download(repo, "keep.txt", revision=c1)).read(),
            snap_v1={p: open(os.path.join(snap_v1, p)).read()
                     for p in ["keep.txt", "dir/a.txt", "gone.txt"]},
            snap_main=sorted(os.listdir(snap_main)),
            snap_main_keep=open(os.path.join(snap_main, "keep.txt")).read(),
            copied=[open(os.path.join(snap_main, p)).read() for p in ["copied.bin", "copied.txt"]],
            missing_repo=error(lambda: api.model_info("tester/no-such-repo")),
            missing_repo_file=error(lambda: api.hf_hub_download("tester/no-such-repo", "a")),
            missing_rev=error(lambda: api.model_info(repo, revision="no-such-branch")),
            missing_rev_file=error(lambda: api.hf_hub_download(repo, "keep.txt",
                                                               revision="no-such-branch")),
            missing_file=error(lambda: api.hf_hub_download(repo, "no-such-file.txt")),
            missing_delete=error(lambda: api.delete_file("no-such-file.txt", repo)),
            missing_tag=error(lambda: api.delete_tag(repo, tag="no-such-tag")),
        )
        api.delete_tag(repo, tag="v1")
        api.delete_branch(repo, branch="feature")
        refs = api.list_repo_refs(repo)
        out(after_delete=[[b.name for b in refs.branches], [t.name for t in refs.tags]])
        """
    )
    c1, c2, c3 = r["c1"], r["c2"], r["c3"]
    assert all(_is_hex40(c) for c in (c1, c2, c3, r["pr_oid"]))
    assert r["dup_tag"]["status"] == 409
    assert r["dup_branch"]["status"] == 409
    assert r["stale"]["status"] == 412
    assert r["branches"] == {"main": c2, "feature": c3}
    assert r["tags"] == {"v1": c1}
    assert r["pr_revision"] == "refs/pr/1"
    assert r["prs"] == {"refs/pr/1": r["pr_oid"]}
    ids = [c[0] for c in r["commits"]]
    assert ids == [c2, c1, hub.commit_ids("tester/refs")[-1]]  # newest first, paginated
    assert [c[1] for c in r["commits"]] == ["two", "one", "initial commit"]
    assert r["commits"][0][2] == "two\n\ndetails"
    assert r["feature_commits"] == [c3, c1, ids[-1]]
    main_files = [".gitattributes", "copied.bin", "copied.txt", "keep.txt"]
    assert r["main_files"] == main_files
    assert r["v1_files"] == [".gitattributes", "dir/a.txt", "dir/b.bin", "gone.txt", "keep.txt"]
    assert r["pr_file"] == r["pr_fs"] == "p"
    assert r["sha_file"] == "v1"
    assert r["snap_v1"] == {"keep.txt": "v1", "dir/a.txt": "a", "gone.txt": "x"}
    assert r["snap_main"] == main_files
    assert r["copied"] == ["b" * 100, "a"]
    assert r["snap_main_keep"] == "v2"
    for key in ("missing_repo", "missing_repo_file"):
        assert "RepositoryNotFoundError" in r[key]["types"], key
    for key in ("missing_rev", "missing_rev_file", "missing_tag"):
        assert "RevisionNotFoundError" in r[key]["types"], key
    for key in ("missing_file", "missing_delete"):
        assert "EntryNotFoundError" in r[key]["types"], key
    assert "doesn't exist" in r["missing_delete"]["message"]
    assert r["after_delete"] == [["main"], []]


def test_empty_commits(hub, run):
    hub.create_repo("tester/empty")
    before = hub.commit("tester/empty", {"a.txt": "a"})
    r = run(
        """
        from huggingface_hub import HfApi, CommitOperationAdd
        api = HfApi()
        same = api.create_commit("tester/empty", commit_message="nothing",
                                 operations=[CommitOperationAdd("a.txt", b"a")])
        none = api.create_commit("tester/empty", commit_message="nothing", operations=[])
        out(same=same.oid, none=none.oid)
        """
    )
    # huggingface_hub skips empty commits itself ("Skipping to prevent empty commit")...
    assert r["same"] == r["none"] == before == hub.head("tester/empty")
    assert not any("/commit/" in p for m, p, _ in hub.requests if "tester/empty" in p)
    # ...while the Hub, sent one anyway, makes a new commit with a new id and the same tree
    body = json.dumps({"key": "header", "value": {"summary": "empty", "description": ""}})
    status, _, payload = _http(
        hub,
        "POST",
        "/api/models/tester/empty/commit/main",
        body.encode() + b"\n",
        {"Content-Type": "application/x-ndjson"},
    )
    assert status == 200
    new = json.loads(payload)["commitOid"]
    assert _is_hex40(new) and new != before == hub.commit_ids("tester/empty")[1]
    assert hub.head("tester/empty") == new
    assert hub.list_files("tester/empty") == [".gitattributes", "a.txt"]


def test_fault_injection_leaves_remote_unchanged(hub, run):
    hub.create_repo("tester/faulty")
    head = hub.commit("tester/faulty", {"a.txt": "a"})
    hub.fail_next("/api/models/tester/faulty/commit/", status=500)
    hub.fail_next("/api/models/tester/faulty/commit/", status="disconnect")
    hub.fail_next("/lfs-upload/", status=403, method="PUT")  # 403: the client does not retry
    r = run(
        """
        from huggingface_hub import HfApi
        api = HfApi()
        up = lambda name, data: api.upload_file(path_or_fileobj=data, path_in_repo=name,
                                                repo_id="tester/faulty")
        out(e500=error(lambda: up("b.txt", b"b")),
            disconnect=error(lambda: up("b.txt", b"b")),
            lfs=error(lambda: up("w.safetensors", b"w" * 64)),
            ok=up("b.txt", b"b").oid)
        """
    )
    assert hub.pending_faults == 0
    assert r["e500"]["status"] == 500
    assert "HfHubHTTPError" in r["e500"]["types"]
    assert r["disconnect"] is not None and r["disconnect"]["status"] is None
    assert r["lfs"] is not None
    assert hub.commit_ids("tester/faulty")[1] == head  # the failed pushes left no trace
    assert r["ok"] == hub.head("tester/faulty") != head
    assert hub.list_files("tester/faulty") == [".gitattributes", "a.txt", "b.txt"]


# --------------------------------------------------------------------------------------------
# datasets and transformers


def test_datasets_push_and_load_at_tag(hub, run):
    r = run(
        """
        from datasets import Dataset, Features, Value, load_dataset
        from huggingface_hub import DatasetCard, HfApi
        api = HfApi()
        repo = "tester/rows"
        features = Features({"x": Value("int64"), "s": Value("string")})
        Dataset.from_dict({"x": [1, 2, 3], "s": ["a", "b", "c"]}, features=features).push_to_hub(
            repo, commit_message="v1 rows")
        api.create_tag(repo, tag="v1", repo_type="dataset")
        Dataset.from_dict({"x": [4, 5], "s": ["d", "e"]}, features=features).push_to_hub(repo)
        Dataset.from_dict({"x": [9], "s": ["z"]}, features=features).push_to_hub(
            repo, revision="dev")
        old = load_dataset(repo, revision="v1", split="train")
        new = load_dataset(repo, split="train")
        dev = load_dataset(repo, revision="dev", split="train")
        card = DatasetCard.load(repo)
        card.data.license = "mit"
        card.text = card.text + "\\nMore words.\\n"
        card.push_to_hub(repo, commit_message="card")
        reloaded = DatasetCard.load(repo)
        out(old=old.to_dict(), new=new.to_dict(), dev=dev.to_dict(),
            license=reloaded.data.license, words="More words." in reloaded.text,
            titles=[c.title for c in api.list_repo_commits(repo, repo_type="dataset")],
            branches=sorted(b.name for b in api.list_repo_refs(repo, repo_type="dataset").branches))
        """
    )
    assert r["old"] == {"x": [1, 2, 3], "s": ["a", "b", "c"]}
    assert r["new"] == {"x": [4, 5], "s": ["d", "e"]}
    assert r["dev"] == {"x": [9], "s": ["z"]}
    assert r["license"] == "mit" and r["words"]
    assert r["titles"][0] == "card" and r["titles"][-1] == "initial commit"
    assert "v1 rows" in r["titles"]
    assert r["branches"] == ["dev", "main"]
    parquet = [p for p in hub.list_files("tester/rows", "dataset") if p.endswith(".parquet")]
    assert parquet and hub.read_file("tester/rows", parquet[0], "dataset")[:4] == b"PAR1"


def test_transformers_push_and_from_pretrained_at_revision(hub, run):
    r = run(
        """
        import torch
        from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM
        from huggingface_hub import HfApi
        torch.set_num_threads(1)
        api = HfApi()
        repo = "framesel-org/tiny-qwen2"
        config = Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                             max_position_embeddings=32)
        torch.manual_seed(0)
        first = Qwen2ForCausalLM(config)
        c1 = first.push_to_hub(repo, commit_message="first weights").oid
        api.create_tag(repo, tag="v1")
        torch.manual_seed(1)
        second = Qwen2ForCausalLM(config)
        c2 = second.push_to_hub(repo, commit_message="second weights").oid
        key = "model.embed_tokens.weight"
        same = lambda a, b: torch.equal(a.state_dict()[key], b.state_dict()[key])
        at_tag = AutoModelForCausalLM.from_pretrained(repo, revision="v1")
        at_sha = AutoModelForCausalLM.from_pretrained(repo, revision=c1)
        latest = AutoModelForCausalLM.from_pretrained(repo)
        out(c1=c1, c2=c2, tag=same(at_tag, first), sha=same(at_sha, first),
            latest=same(latest, second), differ=not same(first, second),
            layers=at_tag.config.num_hidden_layers, files=api.list_repo_files(repo))
        """
    )
    assert _is_hex40(r["c1"]) and _is_hex40(r["c2"]) and r["c1"] != r["c2"]
    assert r["tag"] and r["sha"] and r["latest"] and r["differ"]
    assert r["layers"] == 2
    assert "model.safetensors" in r["files"] and "config.json" in r["files"]
    assert hub.refs("framesel-org/tiny-qwen2")["tags"] == {"v1": r["c1"]}


# --------------------------------------------------------------------------------------------
# raw HTTP: what the clients never send, and exact headers


def test_raw_http_headers_ranges_and_robustness(hub):
    hub.create_repo("tester/raw")
    data = bytes(range(256)) * 4
    head = hub.commit("tester/raw", {"r.txt": data[:100], "w.safetensors": data})
    sha = hashlib.sha256(data).hexdigest()

    status, headers, body = _http(hub, "HEAD", "/tester/raw/resolve/main/r.txt", token=False)
    assert status == 200 and body == b""
    assert headers["X-Repo-Commit"] == head
    assert headers["ETag"] == f'"{git_blob_sha(data[:100])}"'
    assert headers["Content-Length"] == "100"
    assert "X-Xet-Hash" not in headers and "X-Linked-Etag" not in headers

    status, headers, _ = _http(hub, "HEAD", f"/tester/raw/resolve/{head}/w.safetensors")
    assert headers["ETag"] == headers["X-Linked-Etag"] == f'"{sha}"'
    assert headers["X-Linked-Size"] == str(len(data))

    path = "/tester/raw/resolve/main/w.safetensors"
    for spec, expected, content_range in [
        ("bytes=10-19", data[10:20], f"bytes 10-19/{len(data)}"),
        ("bytes=1000-", data[1000:], f"bytes 1000-1023/{len(data)}"),
        ("bytes=-4", data[-4:], f"bytes 1020-1023/{len(data)}"),
        ("bytes=1020-5000", data[1020:], f"bytes 1020-1023/{len(data)}"),
    ]:
        status, headers, body = _http(hub, "GET", path, headers={"Range": spec})
        assert (status, body, headers["Content-Range"]) == (206, expected, content_range)
    status, headers, _ = _http(hub, "GET", path, headers={"Range": "bytes=5000-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"

    status, headers, _ = _http(hub, "GET", "/tester/raw/resolve/main/nope.txt")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"
    assert headers["X-Repo-Commit"] == head
    status, headers, _ = _http(hub, "GET", "/api/models/tester/raw/revision/refs%2Fpr%2F7")
    assert status == 404 and headers["X-Error-Code"] == "RevisionNotFound"
    status, headers, _ = _http(hub, "GET", "/api/models/tester/none")
    assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"
    assert headers["X-Error-Message"]
    status, _, _ = _http(hub, "GET", "/api/no/such/route")
    assert status == 404
    status, _, body = _http(hub, "GET", "/api/agent-harnesses", token=False)
    assert status == 200 and json.loads(body) == {"standardEnvVars": [], "harnesses": {}}

    # LFS: batch, then a PUT that must match the announced sha256 and size
    blob = os.urandom(500)
    oid = hashlib.sha256(blob).hexdigest()
    batch = json.dumps({"operation": "upload", "objects": [{"oid": oid, "size": 500}]})
    status, _, _ = _http(
        hub, "POST", "/tester/raw.git/info/lfs/objects/batch", batch.encode(), token=False
    )
    assert status == 401
    status, _, payload = _http(
        hub, "POST", "/tester/raw.git/info/lfs/objects/batch", batch.encode()
    )
    href = json.loads(payload)["objects"][0]["actions"]["upload"]["href"]
    upload = href[len(hub.url) :]
    assert _http(hub, "PUT", upload, os.urandom(500), token=False)[0] == 400  # wrong sha256
    assert _http(hub, "PUT", upload, blob[:499], token=False)[0] == 400  # wrong size
    assert _http(hub, "PUT", upload.replace("sig=", "sig=0"), blob, token=False)[0] == 403
    # a commit that references an LFS object that was never uploaded is refused
    commit = "\n".join(
        json.dumps(line)
        for line in [
            {"key": "header", "value": {"summary": "lfs"}},
            {
                "key": "lfsFile",
                "value": {"path": "x.bin", "algo": "sha256", "oid": oid, "size": 500},
            },
        ]
    ).encode()
    assert _http(hub, "POST", "/api/models/tester/raw/commit/main", commit)[0] == 422
    # chunked transfer encoding is accepted
    conn = http.client.HTTPConnection(hub.url.removeprefix("http://"), timeout=30)
    conn.request("PUT", upload, body=iter([blob[:200], blob[200:]]), encode_chunked=True)
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 200
    status, _, payload = _http(hub, "POST", "/api/models/tester/raw/commit/main", commit)
    assert status == 200 and hub.read_file("tester/raw", "x.bin") == blob
    # bad paths are refused and leave the repo as it was
    before = hub.head("tester/raw")
    for bad in ["../x", "/abs", "a//b", ".git/config", "x.bin/inner"]:
        line = {"key": "file", "value": {"path": bad, "content": "", "encoding": "base64"}}
        body = json.dumps({"key": "header", "value": {"summary": "s"}}) + "\n" + json.dumps(line)
        assert _http(hub, "POST", "/api/models/tester/raw/commit/main", body.encode())[0] == 400
    assert hub.head("tester/raw") == before
    assert not hub.errors


def test_body_limit_and_persistence(tmp_path):
    with HubServer(root=tmp_path / "state", max_body_bytes=1000) as small:
        small.create_repo("tester/kept", "dataset", private=True)
        head = small.commit(
            "tester/kept", {"d.parquet": b"P" * 50, "n.txt": "n"}, repo_type="dataset"
        )
        small.create_repo("tester/big")
        status, headers, _ = _http(small, "POST", "/api/models/tester/big/commit/main", b"x" * 5000)
        assert status == 413
        assert small.head("tester/big") == small.commit_ids("tester/big")[0]
    with HubServer(root=tmp_path / "state") as again:
        assert again.head("tester/kept", "dataset") == head
        assert again.read_file("tester/kept", "d.parquet", "dataset") == b"P" * 50
        status, headers, body = _http(again, "GET", "/datasets/tester/kept/resolve/main/n.txt")
        assert (status, body, headers["X-Repo-Commit"]) == (200, b"n", head)
        assert (
            _http(again, "GET", "/datasets/tester/kept/resolve/main/n.txt", token=False)[0] == 404
        )


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_object_ids_match_git(tmp_path):
    """Blob and tree ids are git's own (LFS files count as their pointer files)."""
    files = {"a.txt": b"a\n", "dir/b.txt": b"b", "dir/sub/c.md": b"# c", "w.bin": b"\0" * 10}
    with HubServer() as hub:
        hub.create_repo("tester/git")
        hub.commit("tester/git", files)
        files[".gitattributes"] = hub.read_file("tester/git", ".gitattributes")
        _, _, listing = _http(hub, "GET", "/api/models/tester/git/tree/main?recursive=1")
        served = {e["path"]: e["oid"] for e in json.loads(listing)}
    files["w.bin"] = lfs_pointer(hashlib.sha256(files["w.bin"]).hexdigest(), 10)
    work = tmp_path / "git"
    for path, content in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(content)

    def git(*args: str) -> str:
        proc = subprocess.run(
            ["git", "-C", str(work), *args], check=True, capture_output=True, text=True
        )
        return proc.stdout.strip()

    git("init", "-q")
    git("-c", "filter.lfs.clean=cat", "-c", "filter.lfs.required=false", "add", "-A")
    tree = git("write-tree")
    for path in ["a.txt", "dir", "dir/sub", "dir/sub/c.md", "w.bin", ".gitattributes"]:
        assert served[path] == git("rev-parse", f"{tree}:{path}"), path
    expected = {p: git_blob_sha(c) for p, c in files.items()}
    assert tree_oids({p: _entry(o) for p, o in expected.items()})[""] == tree


def _entry(oid: str) -> Entry:
    return Entry(oid, 0)
