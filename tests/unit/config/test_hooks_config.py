"""`hooks` in corral.toml and on the command line: names, forms, merging, sites."""
# ruff: noqa: E501  (expected messages are kept whole, one per line, so they read as the user sees them)

from __future__ import annotations

import pytest

from config_problems import only_problem, problems_of
from corral.cli import UsageError, build_parser, overrides_from_args
from corral.config import load_plan
from corral.config.hooks import HOOKS, hooks_of

SITE = """
[sites.blog]
app = "blog:app"
hosts = ["blog.example"]
"""


def test_a_table_of_every_hook(toml) -> None:
    body = ", ".join(f'{name} = "mysite.hooks:{name}"' for name in HOOKS)
    server = load_plan(toml(f"hooks = {{ {body} }}")).server
    assert hooks_of(server.hooks) == {name: f"mysite.hooks:{name}" for name in HOOKS}


def test_the_sub_table_form_and_nested_attributes(toml) -> None:
    path = toml(
        """
        [hooks]
        post_fork = "mysite.telemetry.setup:Tracing.post_fork"
        """
    )
    assert load_plan(path).server.hooks == ("post_fork=mysite.telemetry.setup:Tracing.post_fork",)


def test_profile_and_flags_merge_by_hook_name(toml) -> None:
    path = toml(
        """
        hooks = { post_fork = "base:post_fork", when_ready = "base:when_ready" }
        [profile.prod]
        hooks = { post_fork = "prod:post_fork" }
        """
    )
    server = load_plan(path, "prod", {"hooks": ("on_reload=cli:on_reload",)}).server
    assert hooks_of(server.hooks) == {
        "post_fork": "prod:post_fork",
        "when_ready": "base:when_ready",
        "on_reload": "cli:on_reload",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('hooks = { post_frok = "a:b" }', "hooks: unknown hook 'post_frok' (did you mean \"post_fork\"?); the hooks are post_fork, when_ready, pre_request, post_request, worker_exit, on_reload"),
        ('hooks = { post-fork = "a:b" }', "hooks: unknown hook 'post-fork' (did you mean \"post_fork\"?)"),
        ('hooks = { on_start = "a:b" }', "hooks: unknown hook 'on_start'"),
        ('hooks = { post_fork = "mysite.hooks" }', 'hooks: post_fork: expected "module:function" (such as "mysite.hooks:post_fork"), got \'mysite.hooks\''),
        ('hooks = { post_fork = "my site:f" }', "hooks: post_fork: expected \"module:function\""),
        ('hooks = { post_fork = "a:f()" }', "hooks: post_fork: expected \"module:function\""),
        ("hooks = { post_fork = 1 }", 'hooks: post_fork: expected a "module:function" string, got integer 1'),
        ('hooks = "a:b"', "hooks: expected a table such as hooks = { post_fork = \"mysite.hooks:post_fork\" }, got string 'a:b'"),
        ('hooks = ["post_fork=a:b"]', "hooks: expected a table such as hooks = { post_fork = \"mysite.hooks:post_fork\" }, got array"),
        ('hook = { post_fork = "a:b" }', 'hook: unknown key (did you mean "hooks"?)'),
    ],
)
def test_bad_hooks_are_errors(toml, body: str, message: str) -> None:
    path = toml(body)
    problem = only_problem(path)
    assert problem.startswith(f"{path}: "), problem
    assert message in problem, problem


def test_worker_hooks_per_site_add_to_the_servers(toml) -> None:
    path = toml(
        'hooks = { post_fork = "base:post_fork", post_request = "base:post_request" }\n'
        + SITE
        + 'hooks = { post_request = "blog.hooks:post_request", pre_request = "blog.hooks:pre_request" }\n'
        + '\n[sites.shop]\napp = "shop:app"\nhosts = ["shop.example"]\n'
    )
    plan = load_plan(path)
    blog, shop = plan.sites
    assert hooks_of(blog.config.hooks) == {
        "post_fork": "base:post_fork",
        "post_request": "blog.hooks:post_request",
        "pre_request": "blog.hooks:pre_request",
    }
    assert hooks_of(shop.config.hooks) == {"post_fork": "base:post_fork", "post_request": "base:post_request"}
    assert "hooks" in blog.overrides and "hooks" not in shop.overrides


def test_a_profile_site_override_merges_too(toml) -> None:
    path = toml(
        SITE
        + 'hooks = { post_fork = "blog:post_fork" }\n'
        + '[profile.prod.sites.blog]\nhooks = { worker_exit = "blog:worker_exit" }\n'
    )
    (blog,) = load_plan(path, "prod").sites
    assert hooks_of(blog.config.hooks) == {"post_fork": "blog:post_fork", "worker_exit": "blog:worker_exit"}


@pytest.mark.parametrize("hook", ["when_ready", "on_reload"])
def test_master_hooks_do_not_belong_in_a_site(toml, hook: str) -> None:
    path = toml(SITE + f'hooks = {{ {hook} = "blog:{hook}" }}\n')
    assert only_problem(path) == (
        f"{path}: [sites.blog] hooks: {hook} runs in the master, once for the server: set it at the top level"
    )


def test_every_problem_at_once(toml) -> None:
    path = toml('hooks = { post_frok = "a:b" }\n[profile.dev]\nhooks = { when_ready = "x" }\n')
    assert len(problems_of(path)) == 2


def test_command_line_form() -> None:
    args = build_parser().parse_args(
        ["serve", "--hooks", "post_fork=mysite.hooks:post_fork", "--hooks", " when_ready = mysite.hooks:ready"]
    )
    assert overrides_from_args(args)["hooks"] == ("post_fork=mysite.hooks:post_fork", "when_ready=mysite.hooks:ready")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("post_fork", "--hooks: expected NAME=module:function, such as post_fork=mysite.hooks:post_fork, got 'post_fork'"),
        ("postfork=a:b", "--hooks: unknown hook 'postfork' (did you mean \"post_fork\"?)"),
        ("post_fork=a", "--hooks: post_fork: expected \"module:function\""),
    ],
)
def test_command_line_errors(value: str, message: str) -> None:
    args = build_parser().parse_args(["serve", "--hooks", value])
    with pytest.raises(UsageError) as info:
        overrides_from_args(args)
    assert str(info.value).startswith(message), str(info.value)
