"""Settings: YAML, environment overrides, and errors that name the YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_router.config.loader import ConfigError, load_settings, require_pepper

SAMPLE = Path(__file__).parents[2] / "configs" / "router.sample.yaml"
PEPPER = {"API_ROUTER__AUTH__PEPPER": "p" * 40}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(text)
    return path


def test_the_sample_file_holds_exactly_the_defaults() -> None:
    assert load_settings(SAMPLE, PEPPER) == load_settings(None, PEPPER)


def test_environment_overrides_the_file_with_types_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 9000\ndispatch:\n  accept_timeout_s: 1.5\n")
    settings = load_settings(
        path, {"API_ROUTER__SERVER__PORT": "9100", "API_ROUTER__DISPATCH__NODE_BACKLOG_LIMIT": "7"}
    )
    assert settings.server.port == 9100
    assert settings.dispatch.accept_timeout_s == 1.5
    assert settings.dispatch.node_backlog_limit == 7


def test_a_pepper_that_looks_like_a_number_stays_a_string() -> None:
    settings = load_settings(None, {"API_ROUTER__AUTH__PEPPER": "0x" + "1" * 40})
    assert settings.auth.pepper == "0x" + "1" * 40


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [
        ("dispatch:\n  accept_timeout_s: soon\n", "dispatch.accept_timeout_s", "expected `float`"),
        ("dispatch:\n  accept_timeout_s: 0\n", "dispatch.accept_timeout_s", "> 0"),
        ("server:\n  port: 70000\n", "server.port", "<= 65535"),
        ("server:\n  bogus: 1\n", "server.bogus", "unknown setting"),
        ("bogus: {}\n", "bogus", "unknown setting"),
        (
            "stream:\n  idle_timeout_s: 5\n",
            "stream.idle_timeout_s",
            "unknown setting; it is now dispatch.idle_timeout_s",
        ),
        ("server: [1, 2]\n", "server", "expected `object`"),
        ("telemetry:\n  log_level: LOUD\n", "telemetry.log_level", "invalid enum value"),
        ("- a\n- b\n", "", "top level must be a mapping"),
        ("server: [\n", "", "not valid YAML at line 2"),
    ],
)
def test_invalid_files_name_the_path_and_reason(
    tmp_path: Path, text: str, path: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), {})
    assert caught.value.path == path
    assert reason in caught.value.reason


def test_a_malformed_environment_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="API_ROUTER__SECTION__KEY"):
        load_settings(None, {"API_ROUTER__PORT": "1"})


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml", {})


def test_the_pepper_is_required_and_its_error_says_how_to_set_it() -> None:
    with pytest.raises(ConfigError) as caught:
        require_pepper(load_settings(None, {}))
    assert caught.value.path == "auth.pepper"
    assert "API_ROUTER__AUTH__PEPPER" in caught.value.reason


def test_a_short_pepper_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"API_ROUTER__AUTH__PEPPER": "short"})
    assert caught.value.path == "auth.pepper"


def test_direct_nodes_come_from_yaml_or_as_a_json_list_in_the_environment(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "direct:\n  nodes:\n    - node_id: gpu-1\n      base_url: http://10.0.0.5:8000/v1\n",
    )
    from_file = load_settings(path, {})
    assert [(n.node_id, n.flavour, n.pool, n.max_concurrency) for n in from_file.direct.nodes] == [
        ("gpu-1", "openai", "direct", 32)
    ]
    nodes = '[{"node_id": "box", "base_url": "http://box:11434", "flavour": "ollama"}]'
    from_env = load_settings(path, {"API_ROUTER__DIRECT__NODES": nodes})
    assert [(n.node_id, n.flavour) for n in from_env.direct.nodes] == [("box", "ollama")]
    with pytest.raises(ConfigError) as twice:
        load_settings(None, {"API_ROUTER__DIRECT__NODES": nodes.replace("]", f", {nodes[1:]}")})
    assert "same node_id" in str(twice.value)
    with pytest.raises(ConfigError) as both:
        key = '[{"node_id": "b", "base_url": "http://b", "api_key_env": "K", "api_key_file": "f"}]'
        load_settings(None, {"API_ROUTER__DIRECT__NODES": key})
    assert "not both" in str(both.value)
