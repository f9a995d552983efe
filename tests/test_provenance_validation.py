"""The shared config checks and the provenance block of summaries."""

import subprocess

import pytest
import torch
from omegaconf import OmegaConf

from nnflow.provenance import git_commit, provenance
from nnflow.validation import check_choice, check_int, check_list, check_positive, select


@pytest.mark.parametrize("cfg", [{"a": {"b": 3, "x": 0.5}}, OmegaConf.create({"a": {"b": 3, "x": 0.5}})])
def test_checks_accept_good_values_in_dicts_and_dictconfigs(cfg):
    assert select(cfg, "a.b") == 3
    check_int(cfg, "a.b", minimum=3)
    check_positive(cfg, "a.x", "a.b")
    check_choice(cfg, "a.b", (1, 3))


@pytest.mark.parametrize(
    "check, value, words",
    [
        (lambda c: check_int(c, "a.b"), 0, "a.b=0 must be an integer ≥ 1"),
        (lambda c: check_int(c, "a.b"), 2.0, "a.b=2.0"),
        (lambda c: check_int(c, "a.b"), True, "a.b=True"),
        (lambda c: check_positive(c, "a.b"), -1, "a.b=-1 must be a positive number"),
        (lambda c: check_positive(c, "a.b"), "1", "a.b='1'"),
        (lambda c: check_choice(c, "a.b", ("x", "y")), "z", "a.b='z' must be one of"),
        (lambda c: check_list(c, "a.b", positive_int=True), [1, 0], "list of positive integers"),
        (lambda c: check_list(c, "a.b", allow_empty=False), [], "non-empty list"),
    ],
)
def test_checks_name_the_key_and_value(check, value, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(".", r"\.")):
        check(OmegaConf.create({"a": {"b": value}}))


def test_missing_key_is_named_and_none_allowed_only_when_asked():
    with pytest.raises(ValueError, match="a.c=missing"):
        check_int({"a": {}}, "a.c")
    check_int({"a": {"c": None}}, "a.c", allow_none=("a.c",))
    with pytest.raises(ValueError, match="a.c=None"):
        check_positive({"a": {"c": None}}, "a.c")


def test_provenance_names_commit_versions_and_device():
    info = provenance(torch.device("cpu"))
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if head:  # inside the checkout
        assert info["commit"].split("-")[0] == head
    assert info["versions"]["torch"] == torch.__version__
    assert info["device"] == "cpu" and info["threads"] == torch.get_num_threads()


def test_commit_is_unknown_outside_a_checkout(tmp_path):
    assert git_commit(tmp_path) == "unknown"
