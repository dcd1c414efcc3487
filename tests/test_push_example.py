"""examples/push.py, Ratchet's push tutorial: a blog in another process pushes posts to subscribers."""

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest
from redis_support import REDIS_SERVER, SKIP_REASON, RawRedis, RedisProcess, ServerProcess, wait_until
from wsclient import WsClient

pytestmark = pytest.mark.timeout(90)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUSH = os.path.join(ROOT, "examples", "push.py")
TOKEN = "blog-token"


def push_server(*args):
    return ServerProcess([PUSH, "server", "--host", "127.0.0.1", "--port", "0", *args])


def subscriber(port, *categories):
    client = WsClient(port)
    assert client.status == 101
    for category in categories:
        client.send(json.dumps({"subscribe": category}))
        assert json.loads(client.recv_message()) == {"subscribed": category}
    return client


def post(*args):
    result = subprocess.run([sys.executable, PUSH, "post", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_posts_over_http_reach_exactly_the_subscribers_of_their_category():
    with push_server("--publish-token", TOKEN) as server:
        first, second = subscriber(server.port, "kittens"), subscriber(server.port, "kittens", "news")
        other = subscriber(server.port, "puppies")
        base = "http://127.0.0.1:%d" % server.port
        out = post("--http", base, "--token", TOKEN, "--category", "kittens", "--title", "New kitten")
        assert out == "2 browser(s) got it over HTTP"
        for client in (first, second):
            entry = json.loads(client.recv_message())
            assert entry["category"] == "kittens" and entry["title"] == "New kitten"
        post("--http", base, "--token", TOKEN, "--category", "puppies", "--title", "New puppy")
        # the kittens post went out first; the first thing `other` gets is its own category's
        assert json.loads(other.recv_message())["title"] == "New puppy"
        bad = subprocess.run([sys.executable, PUSH, "post", "--http", base, "--token", "wrong", "--category", "x",
                              "--title", "t"], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "403" in bad.stderr
        for client in (first, second, other):
            client.shutdown()


def test_the_blog_webapp_pushes_each_new_post():
    with push_server("--publish-token", TOKEN) as server:
        reader = subscriber(server.port, "kittens")
        with ServerProcess([PUSH, "webapp", "--host", "127.0.0.1", "--port", "0", "--http",
                            "http://127.0.0.1:%d" % server.port, "--token", TOKEN],
                           r"blog listening on http://127\.0\.0\.1:(\d+)/") as blog:
            form = urllib.parse.urlencode({"category": "kittens", "title": "From the blog", "article": "<b>hi</b>"})
            with urllib.request.urlopen("http://127.0.0.1:%d/" % blog.port, data=form.encode(), timeout=30) as page:
                assert "Published" in page.read().decode()
            entry = json.loads(reader.recv_message())
            assert entry == {"category": "kittens", "title": "From the blog", "article": "<b>hi</b>",
                             "when": entry["when"]}
        reader.shutdown()


def test_bad_subscription_commands():
    with push_server() as server, WsClient(server.port) as client:
        client.send(json.dumps({"subscribe": "no spaces allowed"}))
        assert "error" in json.loads(client.recv_message())
        client.send("not json")
        assert client.expect_close().code == 1008


@pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)
def test_posts_through_redis_reach_subscribers_on_every_server():
    with RedisProcess() as redis, push_server("--redis", redis.url) as a, push_server("--redis", redis.url) as b:
        on_a, on_b = subscriber(a.port, "kittens"), subscriber(b.port, "kittens")
        not_subscribed = subscriber(b.port, "puppies")
        with RawRedis(redis.port) as raw:
            wait_until(lambda: raw.numsub("ratchet_sel:kittens") == 2, 15, "both servers on kittens")
            wait_until(lambda: raw.numsub("ratchet_sel:puppies") == 1, 15, "one server on puppies")
        out = post("--redis", redis.url, "--category", "kittens", "--title", "Through Redis")
        assert out == "2 socket server(s) got it through Redis"
        for client in (on_a, on_b):
            assert json.loads(client.recv_message())["title"] == "Through Redis"
        post("--redis", redis.url, "--category", "puppies", "--title", "Puppy")
        assert json.loads(not_subscribed.recv_message())["title"] == "Puppy"
        for client in (on_a, on_b, not_subscribed):
            client.shutdown()
