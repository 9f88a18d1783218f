"""The ``redis`` settings of each mode, from a file or the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_router.config.loader import ConfigError, load_settings


def test_a_cluster_from_the_environment_with_its_password() -> None:
    settings = load_settings(
        None,
        {
            "API_ROUTER__REDIS__MODE": "cluster",
            "API_ROUTER__REDIS__NODES": "redis-0.redis:6379,10.0.0.7:7000",
            "API_ROUTER__REDIS__PASSWORD": "s3cret",
            "API_ROUTER__REDIS__TLS": "true",
        },
    ).redis
    assert settings.mode == "cluster"
    assert settings.node_addresses == [("redis-0.redis", 6379), ("10.0.0.7", 7000)]
    assert (settings.password, settings.tls) == ("s3cret", True)


def test_sentinels_and_the_master_name_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "router.yaml"
    path.write_text("redis:\n  mode: sentinel\n  nodes: s1:26379,s2:26379\n  master_name: main\n")
    settings = load_settings(path, {}).redis
    assert settings.node_addresses == [("s1", 26379), ("s2", 26379)]
    assert settings.master_name == "main"


@pytest.mark.parametrize("mode", ["cluster", "sentinel"])
def test_cluster_and_sentinel_need_nodes(mode: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, {"API_ROUTER__REDIS__MODE": mode})
    assert refused.value.path == "redis"
    assert f"redis.nodes is required in {mode} mode" in refused.value.reason


@pytest.mark.parametrize("nodes", ["redis:6379,", "redis", "a:1 ,b:2", "redis://a:6379"])
def test_nodes_are_host_port_pairs(nodes: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(
            None, {"API_ROUTER__REDIS__MODE": "cluster", "API_ROUTER__REDIS__NODES": nodes}
        )
    assert refused.value.path == "redis.nodes"


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, {"API_ROUTER__REDIS__MODE": "replicated"})
    assert refused.value.path == "redis.mode"
