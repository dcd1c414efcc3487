"""The documentation tools: the README's snippet is examples/chat.py, doc blocks run, the API reference."""

import ast
import importlib.util
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


doc_blocks = _load_script("check_doc_blocks")
api_reference = _load_script("gen_api_reference")


def _class_source(source, name):
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == name)
    return ast.get_source_segment(source, node)


def test_the_readme_snippet_is_the_chat_class_of_examples_chat_py():
    blocks = doc_blocks.extract(os.path.join(ROOT, "README.md"))
    snippet = next(block for block in blocks if "class Chat(MessageComponent)" in block.code)
    assert snippet.mode == "serve"
    with open(os.path.join(ROOT, "examples", "chat.py"), encoding="utf-8") as stream:
        example = stream.read()
    assert _class_source(snippet.code, "Chat") == _class_source(example, "Chat")
    # Both log where they listen, on the same default port.
    assert re.search(r"logging\.info\(\"chat listening on ws://", snippet.code)
    assert re.search(r"logging\.info\(\"chat listening on ws://", example)
    assert ", 8080)" in snippet.code and "default=8080" in example


MARKDOWN = '''\
# A page

```python
print("ran")
```

- in a list:

  ```python
  import sys
  sys.exit(3)
  ```

```python serve
from ratchet_sel import IoServer, WsServer, MessageComponent
IoServer.factory(WsServer(MessageComponent()), 8080).run()
```

```python no-run
this is not python
```

```python requires=surely_not_installed_module_xyz
import surely_not_installed_module_xyz
```

```sh
echo not python
```
'''


@pytest.mark.timeout(120)
def test_doc_blocks_run_serve_and_skip_as_fenced(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text(MARKDOWN)
    blocks = doc_blocks.extract(str(page))
    assert [(b.mode, b.line) for b in blocks] == [("run", 3), ("run", 9), ("serve", 14), ("no-run", 19),
                                                  ("run", 23)]
    assert blocks[1].code == "import sys\nsys.exit(3)\n"  # the list's indentation is removed
    assert doc_blocks.run_block(blocks[0], 60) == (True, "ran\n")
    passed, text = doc_blocks.run_block(blocks[1], 60)
    assert not passed and text.startswith("exit status 3")
    passed, text = doc_blocks.run_block(blocks[2], 60)
    assert passed, text
    assert re.match(r"listening on 127\.0\.0\.1 port \d+; answered: HTTP/1\.1 426", text)
    assert doc_blocks.main([str(page)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "page.md:9" in out
    assert "1 skipped for a missing module" in out and "1 not run on purpose" in out
    assert "no-run  " in out and "page.md:19" in out


def test_a_block_that_never_ends_must_be_fenced_serve(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nimport time\nwhile True:\n    time.sleep(1)\n```\n")
    passed, text = doc_blocks.run_block(doc_blocks.extract(str(page))[0], 2)
    assert not passed and "```python serve" in text


def test_fence_mistakes_are_errors(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("```python srve\nprint(1)\n```\n")
    with pytest.raises(doc_blocks.FenceError, match="unknown word 'srve'"):
        doc_blocks.extract(str(page))
    page.write_text("text\n```python\nprint(1)\n")
    assert doc_blocks.main([str(page)]) == 2
    assert "never closed" in capsys.readouterr().err


def _fake_package(root):
    package = root / "ratchet_sel"
    (package / "newpkg").mkdir(parents=True)
    (package / "__init__.py").write_text('"""The package."""\nfrom .tool import Tool\n__all__ = ["Tool"]\n')
    (package / "tool.py").write_text(
        '"""Tools."""\n\n\nclass Tool:\n    """A tool."""\n\n'
        '    def __init__(self, size: int = 3) -> None:\n        self.size = size\n\n'
        '    def use(self, times: "int" = 1, *, loud=False) -> str:\n        """Use it ``times`` times."""\n'
        '        return "x"\n\n    def _hidden(self):\n        pass\n')
    (package / "newpkg" / "__init__.py").write_text('"""Added later by someone else."""\n')
    (package / "newpkg" / "worker.py").write_text(
        '"""Workers."""\n\n\ndef spawn(n: int) -> None:\n    """Start :class:`~ratchet_sel.tool.Tool` n times."""\n')
    (package / "_private.py").write_text('"""Private."""\n')
    (package / "__main__.py").write_text('"""CLI."""\n')
    return package


def test_the_api_reference_finds_new_modules_by_itself(tmp_path):
    _fake_package(tmp_path)
    assert [name for name, _ in api_reference.discover(str(tmp_path))] == [
        "ratchet_sel", "ratchet_sel.newpkg", "ratchet_sel.newpkg.worker", "ratchet_sel.tool"]
    text = api_reference.generate(str(tmp_path))
    assert "`Tool(size: int = 3)`" in text
    assert "`Tool.use(times: \"int\" = 1, *, loud=False) -> str`" in text
    assert "Use it `times` times." in text
    assert "_hidden" not in text and "_private" not in text
    assert "Start [`Tool`](#ratchet_sel-tool-Tool) n times." in text
    assert "Also exported here: [`Tool`](#ratchet_sel-tool-Tool)." in text


def test_the_api_reference_check_fails_on_a_stale_file(tmp_path, capsys, monkeypatch):
    output = tmp_path / "api.md"
    assert api_reference.main(["--output", str(output)]) == 0
    assert api_reference.main(["--check", "--output", str(output)]) == 0
    output.write_text(output.read_text().replace("IoServer", "IoServe", 1))
    assert api_reference.main(["--check", "--output", str(output)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert api_reference.main(["--check", "--output", str(tmp_path / "missing.md")]) == 1



code_links = _load_script("check_code_links")


def test_code_links_are_checked_and_fixed(tmp_path, capsys):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text("import os\n\n\nclass Thing:\n    @property\n    def size(self):\n"
                                    "        return 1\n\n    def grow(self):\n        pass\n\n\ndef helper():\n"
                                    "    pass\n")
    page = tmp_path / "page.md"
    page.write_text("See [`Thing.grow`](pkg/mod.py#L9), [`Thing.size`](pkg/mod.py#L1), "
                    "[`helper()`](pkg/mod.py#L2) and [`Thing`](pkg/mod.py#L4).\n")
    assert code_links.main([str(page)]) == 1
    err = capsys.readouterr().err
    assert "Thing.size is at pkg/mod.py#L5, the link says L1" in err and "helper is at pkg/mod.py#L13" in err
    assert code_links.main(["--fix", str(page)]) == 0
    assert page.read_text() == ("See [`Thing.grow`](pkg/mod.py#L9), [`Thing.size`](pkg/mod.py#L5), "
                                "[`helper()`](pkg/mod.py#L13) and [`Thing`](pkg/mod.py#L4).\n")
    page.write_text("[`Thing.shrink`](pkg/mod.py#L9)\n")
    assert code_links.main(["--fix", str(page)]) == 1
    assert "defines no Thing.shrink" in capsys.readouterr().err
