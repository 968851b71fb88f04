"""The export target registry: every target is consistent with the quantization schemes, `list targets` shows
them, an unknown target is refused with the closest and the valid names, and recipes' [deploy] target is checked
against the registry."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vjepa_edge.cli import app
from vjepa_edge.distill.recipe import DeployConfig
from vjepa_edge.errors import ConfigError, RegistryError
from vjepa_edge.export.targets import TARGETS, check_target_scheme, get_target, list_targets
from vjepa_edge.quant.schemes import get_scheme

runner = CliRunner()

EXPECTED = {
    "xnnpack-fp32",
    "xnnpack-int8",
    "coreml-fp16",
    "coreml-int8",
    "mlpackage-fp16",
    "mlpackage-int8",
    "onnx-fp32",
    "onnx-int8",
    "vulkan-fp32",
    "qnn-int8",
}


def test_registry_holds_every_target() -> None:
    assert set(list_targets()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_target_is_consistent(name: str) -> None:
    t = get_target(name)
    assert t.name == name and name.endswith(t.precision) and t.suffix in (".pte", ".mlpackage", ".onnx")
    for scheme in t.schemes:  # each scheme that feeds it is registered and names it as its target
        assert name in get_scheme(scheme).targets
    assert (t.precision == "int8") == bool(t.schemes) or name == "qnn-int8"  # qnn quantizes with the SDK's quantizer
    assert t.runs_here == (t.backend in ("xnnpack", "onnx"))


def test_default_and_explicit_schemes() -> None:
    assert get_target("mlpackage-int8").scheme == "coreml-int8-wo"
    assert check_target_scheme(get_target("mlpackage-int8"), "coreml-int8") == "coreml-int8"
    assert check_target_scheme(get_target("xnnpack-fp32"), None) is None
    with pytest.raises(ConfigError, match="does not take scheme 'onnx-int8'"):
        check_target_scheme(get_target("xnnpack-int8"), "onnx-int8")


def test_unknown_target_names_the_closest_and_the_valid_ones() -> None:
    with pytest.raises(RegistryError) as e:
        get_target("xnnpack-int9")
    assert "'xnnpack-int8'" in e.value.message
    assert all(name in e.value.hint for name in EXPECTED)


def test_list_targets() -> None:
    result = runner.invoke(app, ["list", "targets", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output.strip().splitlines()[-1])["targets"]
    assert [row["name"] for row in rows] == list_targets()
    assert {row["name"]: row["schemes"] for row in rows}["xnnpack-int8"] == "xnnpack-int8, xnnpack-int8-dyn"


def test_recipe_deploy_target_is_checked_against_the_registry() -> None:
    assert DeployConfig(target="onnx-int8").target == "onnx-int8"
    with pytest.raises(ConfigError, match="did you mean 'coreml-fp16'"):
        DeployConfig(target="coreml-fp61")
    assert len(TARGETS) == len(EXPECTED)
