"""Settings: declarations, parsers, precedence, the config file, the CLI options, key files."""

from __future__ import annotations

import copy
import os
import pickle
import re
import stat
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest
import typer
from typer.testing import CliRunner

import titan_actors
from titan_actors.config import (
    SETTINGS,
    AofFsync,
    Config,
    LogLevel,
    SealFrames,
    Setting,
    Source,
    check_bind_address,
    generate_key_file,
    load_config,
    make_registry,
    read_key_file,
    settings_options,
)
from titan_actors.config_parse import parse_duration, parse_host, parse_port, parse_size
from titan_actors.errors import ConfigError, SettingDeclarationError, UsageError

NO_ENV: dict[str, str] = {}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- declarations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "env", "default"),
    [
        ("data_dir", "TITAN_DATA_DIR", Path(platformdirs.user_state_dir("titan-actors"))),
        ("host", "TITAN_HOST", "127.0.0.1"),
        ("port", "TITAN_PORT", 9090),
        ("web_port", "TITAN_WEB_PORT", 5000),
        ("store_port", "TITAN_STORE_PORT", 6379),
        ("store_address", "TITAN_STORE_ADDRESS", None),
        ("key_file", "TITAN_KEY_FILE", None),
        ("tls_cert", "TITAN_TLS_CERT", None),
        ("tls_key", "TITAN_TLS_KEY", None),
        ("tls_ca", "TITAN_TLS_CA", None),
        ("seal_frames", "TITAN_SEAL_FRAMES", SealFrames.AUTO),
        ("max_frame_size", "TITAN_MAX_FRAME_SIZE", 16 * 1024 * 1024),
        ("ask_timeout", "TITAN_ASK_TIMEOUT", 30.0),
        ("handshake_timeout", "TITAN_HANDSHAKE_TIMEOUT", 10.0),
        ("mailbox_size", "TITAN_MAILBOX_SIZE", 1000),
        ("aof_fsync", "TITAN_AOF_FSYNC", AofFsync.ALWAYS),
        ("aof_rewrite_min_size", "TITAN_AOF_REWRITE_MIN_SIZE", 64 * 1024 * 1024),
        ("aof_rewrite_percentage", "TITAN_AOF_REWRITE_PERCENTAGE", 100),
        ("log_level", "TITAN_LOG_LEVEL", LogLevel.INFO),
        ("config_file", "TITAN_CONFIG", None),
    ],
)
def test_declared_setting(name: str, env: str, default: object) -> None:
    setting = SETTINGS[name]
    assert (setting.env, setting.default) == (env, default)
    assert setting.help


def test_flags_derive_from_names_except_config() -> None:
    assert SETTINGS["data_dir"].flag == "--data-dir"
    assert SETTINGS["aof_rewrite_min_size"].flag == "--aof-rewrite-min-size"
    assert SETTINGS["config_file"].flag == "--config"
    assert SETTINGS["seal_frames"].choices == ("auto", "always", "never")


@pytest.mark.parametrize("setting", list(SETTINGS.values()), ids=list(SETTINGS))
def test_each_default_reads_back_from_its_display(setting: Setting) -> None:
    if setting.default is not None:
        assert setting.parse(setting.display(setting.default)) == setting.default


@pytest.mark.parametrize(
    "clash",
    [
        Setting("port", "TITAN_OTHER", 1, parse_port, "a duplicate name"),
        Setting("other", "TITAN_PORT", 1, parse_port, "a duplicate env key"),
        Setting("other", "TITAN_OTHER", 1, parse_port, "a duplicate flag", flag="--port"),
    ],
)
def test_registry_refuses_duplicates(clash: Setting) -> None:
    with pytest.raises(SettingDeclarationError, match="already claimed"):
        make_registry([*SETTINGS.values(), clash])


def test_declaration_refuses_bad_names() -> None:
    with pytest.raises(SettingDeclarationError):
        Setting("not-an-identifier", "TITAN_X", 1, parse_port, "x")
    with pytest.raises(SettingDeclarationError):
        Setting("x", "X", 1, parse_port, "x")


# -- parsers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("30s", 30.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1.5h", 5400.0),
        (" 0.25 s ", 0.25),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration()(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5 parsecs", "-1", "0", "0ms", "1e999"])
def test_bad_durations_say_what_is_right(text: str) -> None:
    with pytest.raises(ConfigError, match=r"duration"):
        parse_duration()(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1 << 20),
        ("512k", 512 << 10),
        ("16MiB", 16 << 20),
        ("16mb", 16 << 20),
        ("1G", 1 << 30),
        ("1.5k", 1536),
        ("100b", 100),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size()(text) == size


def test_bad_sizes() -> None:
    with pytest.raises(ConfigError, match=r"not a size.*16MiB"):
        parse_size()("lots")
    with pytest.raises(ConfigError, match="at least 1KiB and at most 1GiB"):
        SETTINGS["max_frame_size"].parse("100")


@pytest.mark.parametrize("text", ["-1", "65536", "http", "80.5"])
def test_bad_ports(text: str) -> None:
    with pytest.raises(ConfigError, match=r"0\.\.65535"):
        parse_port(text)


def test_choices_are_case_insensitive_and_typos_get_a_hint() -> None:
    assert SETTINGS["aof_fsync"].parse("EverySec") is AofFsync.EVERYSEC
    with pytest.raises(ConfigError, match=r"did you mean 'everysec'.*always, everysec, no"):
        SETTINGS["aof_fsync"].parse("evrysec")


def test_store_addresses() -> None:
    setting = SETTINGS["store_address"]
    assert setting.parse("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert setting.parse("[::1]:6380") == ("::1", 6380)
    assert setting.parse("") is None  # empty: the store embedded in the master
    assert setting.display(("::1", 6380)) == "[::1]:6380"
    for bad in ("127.0.0.1", "localhost:", ":6379", "::1:6379", "h:x", "a b:1"):
        with pytest.raises(ConfigError, match="is not HOST:PORT; expected .*127.0.0.1:6379"):
            setting.parse(bad)
    with pytest.raises(ConfigError, match="port 0; expected a port 1..65535"):
        setting.parse("h:0")
    with pytest.raises(ConfigError, match="TITAN_STORE_ADDRESS: 'nope' is not HOST:PORT"):
        load_config(env={"TITAN_STORE_ADDRESS": "nope"})


def test_hosts() -> None:
    assert parse_host("[::1]") == "::1"
    with pytest.raises(ConfigError, match="host"):
        parse_host(" ")


# -- load_config and precedence ----------------------------------------------------------------


def test_defaults_when_nothing_is_given() -> None:
    cfg = load_config(env=NO_ENV)
    assert cfg.port == 9090 and cfg.host == "127.0.0.1" and cfg.key_file is None
    assert {row.source for row in cfg.describe()} == {Source.DEFAULT}


@pytest.mark.parametrize(
    ("flag", "env", "in_file", "port", "source"),
    [
        ("1", "2", "3", 1, "flag"),
        (None, "2", "3", 2, "env"),
        (None, None, "3", 3, "file"),
        (None, None, None, 9090, "default"),
    ],
)
def test_precedence_flag_env_file_default(tmp_path: Path, flag, env, in_file, port, source) -> None:
    path = write(tmp_path / "t.yaml", f"port: {in_file}\n" if in_file else "host: 127.0.0.2\n")
    cfg = load_config({"port": flag}, env={"TITAN_PORT": env} if env else NO_ENV, file=path)
    assert (cfg.port, cfg.source("port")) == (port, source)


def test_non_string_flags_are_validated_too(tmp_path: Path) -> None:
    cfg = load_config({"port": 0, "data_dir": tmp_path, "ask_timeout": 0.5}, env=NO_ENV)
    assert (cfg.port, cfg.data_dir, cfg.ask_timeout) == (0, tmp_path, 0.5)
    with pytest.raises(ConfigError, match="--port"):
        load_config({"port": 70000}, env=NO_ENV)


def test_env_reads_only_declared_keys_and_parses_them() -> None:
    cfg = load_config(
        env={"TITAN_TOKEN": "x", "TITAN_MAX_FRAME_SIZE": "512k", "TITAN_SEAL_FRAMES": "never"}
    )
    assert cfg.max_frame_size == 512 * 1024 and cfg.seal_frames is SealFrames.NEVER
    assert cfg.source("max_frame_size") == "env"


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"port": "x"}, env={"TITAN_ASK_TIMEOUT": "soon", "TITAN_LOG_LEVEL": "loud"})
    message = str(info.value)
    assert "--port: 'x' is not an integer" in message
    assert "TITAN_ASK_TIMEOUT: 'soon' is not a duration" in message
    assert "TITAN_LOG_LEVEL: 'loud'" in message and "debug, info, warning, error" in message


def test_unknown_flag_name_gets_a_hint() -> None:
    with pytest.raises(ConfigError, match="did you mean 'port'"):
        load_config({"prot": "1"}, env=NO_ENV)


def test_tls_cert_needs_tls_key() -> None:
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load_config({"tls_cert": "c.pem"}, env=NO_ENV)


def test_empty_optional_path_in_env_means_none() -> None:
    cfg = load_config(env={"TITAN_KEY_FILE": ""})
    assert cfg.key_file is None and cfg.source("key_file") == "env"


# -- the config file ---------------------------------------------------------------------------


def test_file_values_are_parsed_like_env_values(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml", "# settings\nmax_frame_size: 1MiB\nask_timeout: 500ms\nhost: ~\n"
    )
    cfg = load_config(env=NO_ENV, file=path)
    assert (cfg.max_frame_size, cfg.ask_timeout) == (1 << 20, 0.5)
    assert cfg.source("host") == "default"  # a YAML null means "not set here"
    assert (cfg.config_file, cfg.source("config_file")) == (path, "flag")


def test_relative_paths_in_a_file_are_relative_to_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "key_file: keys/cluster.key\ndata_dir: /srv/titan\n")
    cfg = load_config({"tls_ca": "ca.pem"}, env=NO_ENV, file=path)
    assert cfg.key_file == tmp_path / "keys" / "cluster.key"
    assert cfg.data_dir == Path("/srv/titan")
    assert cfg.tls_ca == Path("ca.pem")  # a flag is relative to the working directory


def test_unknown_key_names_file_line_and_closest_key(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "port: 1\naof_fsinc: always\n")
    with pytest.raises(
        ConfigError,
        match=re.escape(str(path)) + r":2: unknown setting 'aof_fsinc'; did you mean 'aof_fsync'",
    ):
        load_config(env=NO_ENV, file=path)


def test_bad_value_names_file_line_key_and_what_is_right(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "host: 0.0.0.0\n\nmailbox_size: 0\n")
    with pytest.raises(
        ConfigError,
        match=re.escape(str(path))
        + r":3: mailbox_size: 0 is out of range; expected an integer >= 1",
    ):
        load_config(env=NO_ENV, file=path)


def test_config_file_comes_from_flag_or_env(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "port: 1\n")
    b = write(tmp_path / "b.yaml", "port: 2\n")
    assert load_config(env={"TITAN_CONFIG": str(a)}).port == 1
    cfg = load_config({"config_file": str(b)}, env={"TITAN_CONFIG": str(a)})
    assert (cfg.port, cfg.source("port"), cfg.source("config_file")) == (2, "file", "flag")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "config_file: other.yaml\n",
            r":1: config_file cannot be set in a config file; use --config or TITAN_CONFIG",
        ),
        ("port: [1, 2]\n", r":1: port: expected a single value"),
        ("port: 1\nport: 2\n", r":2: port is set twice \(first on line 1\)"),
        ("- port\n", r":1: expected a mapping"),
        ("port: 1\nhost: [\n", r":3: not valid YAML"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError, match=re.escape(str(path)) + problem):
        load_config(env=NO_ENV, file=path)


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    assert load_config(env=NO_ENV, file=write(tmp_path / "e.yaml", "# nothing\n")).port == 9090
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(env=NO_ENV, file=tmp_path / "missing.yaml")


# -- Config ------------------------------------------------------------------------------------


def test_config_is_immutable_and_names_unknown_settings() -> None:
    cfg = load_config(env=NO_ENV)
    with pytest.raises(AttributeError, match="immutable"):
        cfg.port = 1
    with pytest.raises(AttributeError, match="did you mean 'port'"):
        _ = cfg.prot
    with pytest.raises(ConfigError, match="unknown setting"):
        cfg.source("nope")
    assert cfg == load_config(env=NO_ENV) and hash(cfg) == hash(load_config(env=NO_ENV))


def test_config_copies_and_pickles() -> None:
    cfg = load_config({"port": "1"}, env={"TITAN_LOG_LEVEL": "debug"})
    for clone in (copy.deepcopy(cfg), pickle.loads(pickle.dumps(cfg))):
        assert clone == cfg and clone.source("log_level") == "env"


def test_describe_rows_follow_the_declarations() -> None:
    rows = load_config({"port": "1"}, env=NO_ENV).describe()
    assert [row.name for row in rows] == list(SETTINGS)
    port = next(row for row in rows if row.name == "port")
    assert (port.value, port.source, port.env, port.help) == (
        1,
        "flag",
        "TITAN_PORT",
        SETTINGS["port"].help,
    )


# -- bind address ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]
)
def test_loopback_binds_need_no_key(host: str) -> None:
    check_bind_address(host, has_key=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.com", "128.0.0.1"])
def test_other_binds_need_a_key(host: str) -> None:
    with pytest.raises(
        ConfigError, match=r"--key-file / TITAN_KEY_FILE .* or bind to 127\.0\.0\.1"
    ):
        check_bind_address(host, has_key=False)
    check_bind_address(host, has_key=True)


# -- key files ---------------------------------------------------------------------------------


def test_generated_key_reads_back(tmp_path: Path) -> None:
    path = generate_key_file(tmp_path / "cluster.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) == 64
    assert len(read_key_file(path)) == 32


def test_generate_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    path = generate_key_file(tmp_path / "k")
    old = read_key_file(path)
    with pytest.raises(ConfigError, match="already exists; pass --force"):
        generate_key_file(path)
    assert read_key_file(path) == old
    generate_key_file(path, force=True)
    assert read_key_file(path) != old and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary file left behind


def test_generate_into_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be created"):
        generate_key_file(tmp_path / "nope" / "k")


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = generate_key_file(tmp_path / "k")
    path.chmod(0o640)
    with pytest.raises(
        ConfigError,
        match=rf"{re.escape(str(path))} is accessible by group or others"
        rf".*chmod 600 {re.escape(str(path))}",
    ):
        read_key_file(path)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist.*titanctl key generate"):
        read_key_file(tmp_path / "missing")


def _key_file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "k"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    return path


def test_base64_keys_are_accepted(tmp_path: Path) -> None:
    import base64

    key = bytes(range(40))
    assert read_key_file(_key_file(tmp_path, base64.b64encode(key) + b"\n")) == key


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"00" * 16, "16-byte key; expected at least 32"),
        (b"00" * 32, "not random"),
        (b"not a key at all!", "neither hex nor base64"),
        (b"\xff\xfe", "not text"),
    ],
)
def test_bad_keys_are_refused(tmp_path: Path, content: bytes, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        read_key_file(_key_file(tmp_path, content))


# -- the CLI options ---------------------------------------------------------------------------


def make_app(env: dict[str, str]) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @settings_options("port", "data_dir", "seal_frames", env=env)
    def serve(name: str, config: Config, loud: bool = False) -> None:
        """Serve something."""
        print(f"{name} port={config.port} from={config.source('port')} loud={loud}")

    return app


def invoke(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def test_help_lists_the_options_with_their_help() -> None:
    result = invoke(make_app({}), "--help")
    assert result.exit_code == 0, result.output
    for name in ("port", "data_dir", "seal_frames", "config_file"):
        setting = SETTINGS[name]
        assert setting.flag in result.output
        assert setting.help.split(".")[0] in result.output
    assert "(env TITAN_PORT; default 9090)" in result.output
    assert "auto|always|never" in result.output


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--port", "1"], {"TITAN_PORT": "2"}, "port=1 from=flag"),
        ([], {"TITAN_PORT": "2"}, "port=2 from=env"),
        ([], {}, "port=3 from=file"),
    ],
)
def test_precedence_through_the_cli(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    path = write(tmp_path / "c.yaml", "port: 3\n")
    result = invoke(make_app(env), "job", "--loud", "--config", str(path), *args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"job {expected} loud=True"


def test_cli_default_and_config_from_env(tmp_path: Path) -> None:
    assert invoke(make_app({}), "job").output.strip() == "job port=9090 from=default loud=False"
    path = write(tmp_path / "c.yaml", "port: 3\n")
    assert "port=3 from=file" in invoke(make_app({"TITAN_CONFIG": str(path)}), "job").output


def test_cli_reports_a_bad_value_as_a_usage_error() -> None:
    result = invoke(make_app({}), "job", "--port", "http")
    assert result.exit_code == 2
    assert "--port: 'http' is not an integer" in result.output


def test_cli_reads_os_environ_when_no_env_is_given() -> None:
    app = typer.Typer()

    @app.command()
    @settings_options("port", config_option=False)
    def show(config: Config) -> None:
        print(config.port, config.source("port"))

    result = CliRunner().invoke(app, [], env={"TITAN_PORT": "4"})
    assert result.output.strip() == "4 env"
    assert "--config" not in invoke(app, "--help").output


def test_decorator_refuses_misuse() -> None:
    with pytest.raises(TypeError, match="needs a `config` parameter"):
        settings_options("port")(lambda port_number: None)
    with pytest.raises(TypeError, match="parameter 'port'"):
        settings_options("port")(lambda port, config: None)
    with pytest.raises(ConfigError, match="did you mean 'port'"):
        settings_options("prot")
    assert issubclass(ConfigError, UsageError)


def test_importing_config_does_not_import_typer() -> None:
    code = "import sys, titan_actors.config; print('typer' in sys.modules)"
    src = str(Path(titan_actors.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout.strip() == "False", out.stderr


def test_booleans_and_module_lists_parse_or_say_what_is_expected() -> None:
    from titan_actors.config_parse import parse_bool, parse_names
    assert [parse_bool(t) for t in ("true", "On", "1", "no", "FALSE", "0")] == \
        [True, True, True, False, False, False]
    with pytest.raises(ConfigError, match="use true or false"):
        parse_bool("maybe")
    assert parse_names(" json, urllib.parse ,,") == ("json", "urllib.parse")
    assert parse_names("") == ()
    with pytest.raises(ConfigError, match="is not a module name"):
        parse_names("json,not-a-module")
