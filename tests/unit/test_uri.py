"""The URI grammar: kube-eventer's syntax as written, and clear errors for bad input."""

import pytest

from shipper.uri import (
    Param,
    Uri,
    UsageError,
    expand_env,
    parse_bool,
    parse_duration,
    parse_list,
    redact_url,
    resolve_params,
)

DECLARED = (
    Param("level", str, None, "level"),
    Param("retention", parse_duration, 60.0, "retention"),
    Param("nodes", parse_list, [], "nodes", repeat=True),
    Param("token", str, None, "token", secret=True),
    Param("insecure", parse_bool, False, "insecure"),
)


def test_vendor_url_keeps_its_own_query_and_we_take_ours():
    uri = Uri.parse(
        "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=T&label=c1&level=Warning",
        what="--sink",
    )
    assert uri.scheme == "dingtalk"
    assert uri.rest == "https://oapi.dingtalk.com/robot/send"
    values, leftover = resolve_params(DECLARED, uri.query, where="w", passthrough=True)
    assert values["level"] == "Warning"
    assert leftover == [("access_token", "T"), ("label", "c1")]


def test_scheme_only_and_empty_rest():
    assert Uri.parse("log", what="--sink") == Uri("log", "", [])
    uri = Uri.parse("kafka:?brokers=a:9092&brokers=b:9092", what="--sink")
    assert (uri.scheme, uri.rest) == ("kafka", "")
    assert uri.query == [("brokers", "a:9092"), ("brokers", "b:9092")]


def test_repeated_and_comma_lists_combine():
    values, _ = resolve_params(DECLARED, [("nodes", "a,b"), ("nodes", "c")], where="w")
    assert values["nodes"] == ["a", "b", "c"]


def test_defaults_apply():
    values, _ = resolve_params(DECLARED, [], where="w")
    assert values == {
        "level": None,
        "retention": 60.0,
        "nodes": [],
        "token": None,
        "insecure": False,
    }


def test_unknown_parameter_suggests_the_closest():
    with pytest.raises(
        UsageError, match=r"unknown parameter 'retension'; did you mean 'retention'"
    ):
        resolve_params(DECLARED, [("retension", "1h")], where="--sink sqlite")


def test_bad_value_names_parameter_and_expectation():
    with pytest.raises(
        UsageError, match=r"--sink sqlite: parameter retention='forever': expected a"
    ):
        resolve_params(DECLARED, [("retention", "forever")], where="--sink sqlite")


def test_bad_secret_value_is_not_echoed():
    declared = (Param("token", parse_bool, None, "t", secret=True),)
    with pytest.raises(UsageError) as info:
        resolve_params(declared, [("token", "hunter2")], where="w")
    assert "hunter2" not in str(info.value)


def test_parameter_given_twice_keeps_the_first_as_go_url_values_get(caplog):
    values, _ = resolve_params(DECLARED, [("level", "a"), ("level", "b")], where="w")
    assert values["level"] == "a"
    assert "w: parameter 'level' is given more than once; the first one counts." in caplog.text


def test_env_expansion(monkeypatch):
    monkeypatch.setenv("TOKEN", "s3cret")
    assert expand_env("a=$TOKEN&b=${TOKEN}&c=$$", where="w") == "a=s3cret&b=s3cret&c=$"
    values, _ = resolve_params(DECLARED, [("token", "$TOKEN")], where="w")
    assert values["token"] == "s3cret"


def test_unset_env_var_is_an_error(monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(UsageError, match="environment variable NOPE_NOT_SET is not set"):
        expand_env("$NOPE_NOT_SET", where="w")


def test_secret_from_file(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("from-a-secret\n")
    values, _ = resolve_params(DECLARED, [("token_file", str(secret))], where="w")
    assert values["token"] == "from-a-secret"
    with pytest.raises(UsageError, match="cannot read"):
        resolve_params(DECLARED, [("token_file", str(tmp_path / "missing"))], where="w")


def test_file_form_only_for_secrets():
    with pytest.raises(UsageError, match="unknown parameter 'level_file'"):
        resolve_params(DECLARED, [("level_file", "/x")], where="w")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("720h", 720 * 3600), ("1h30m", 5400), ("500ms", 0.5), ("45", 45), ("7d", 7 * 86400)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "h", "1x", "-5", "1h junk"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_not_a_scheme():
    with pytest.raises(UsageError, match="is not a scheme"):
        Uri.parse("://nothing", what="--sink")


def test_redaction_hides_tokens_and_passwords():
    shown = redact_url("https://user:pw@h:9200/robot/send?access_token=abc&label=x&sign=s")
    assert "abc" not in shown and "pw@" not in shown and "sign=s" not in shown
    assert "label=x" in shown and "user:***@h:9200" in shown
