"""Mutation testing: do the tests fail when the code is wrong?

Each area's code is changed one small edit at a time (a mutant: ``<`` for ``<=``, ``+`` for ``-``, a
function body replaced by a constant, ``and`` for ``or``, ...) and the area's tests are run against it. A
mutant the tests fail on is *caught*; one they pass on is *missed*: either the tests do not check that
behaviour, or the edit changes nothing observable (an equivalent mutant, listed with its reason in
``benches/mutation_explained.txt``).

Rust areas run `cargo-mutants <https://mutants.rs>`_ (installed with ``cargo install cargo-mutants
--locked`` if missing) in a copy of the tree, one mutant at a time, against the library's unit tests
(``cargo test --lib``, debug build without debug info). Python areas run a small mutator of this script
(below): each mutant is written into a scratch copy of the package, native extension included, which
is put first on ``PYTHONPATH`` for the area's pytest files.

    python benches/mutation.py --list                 # areas and mutant counts, nothing run
    python benches/mutation.py safety auth            # run those areas, print caught/missed
    python benches/mutation.py rust | python | all    # groups of areas
    python benches/mutation.py py-safety --only 'load_constraints'   # Python mutants whose name matches

Results of a Rust area stay in ``target/mutation/<area>/mutants.out`` (``missed.txt``, ``caught.txt``,
logs and diffs); of a Python area in ``target/mutation/<area>/missed.txt``. Run ``./scripts/test.sh``
once first (it installs the package, in place, and the test requirements). Not a test: on two cores an area
takes from 4 minutes (auth) to half an hour (safety: 260 mutants at 5 to 10 s each).
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "target" / "mutation"
EXPLAINED = REPO / "benches" / "mutation_explained.txt"

# The functions that compute an env's reward; the batch step that decides terminated/truncated.
REWARD_FUNCTIONS = (
    r"reward|comfort_deviation|energy_cost|ChemicalReactor::(finish_step|setpoint)|FourTank::setpoint"
    r"|IndustrialBenchmark::(update_cost|update_goldstone)|PenaltyShape::reward|goldstone_reward"
    r"|normalized_score|ace|<impl ProcessModel for \w+>::step"
)
REWARD_RE = rf"^src/envs/[a-z_]+\.rs:.*(replace|in) ({REWARD_FUNCTIONS})( ->| with|$)"
TERMINATION_RE = r"^src/vector/kernel\.rs:.*(replace|in) Ctx<'_>::finish_one( ->| with|$)"


@dataclass
class RustArea:
    files: list[str]
    re: str | None = None
    about: str = ""
    exclude: list[str] = field(default_factory=list)


@dataclass
class PyArea:
    module: str
    tests: list[str]
    about: str = ""


RUST_AREAS: dict[str, RustArea] = {
    "safety": RustArea(
        ["src/safety/*.rs"],
        exclude=["src/safety/audit.rs"],
        about="constraints, alarms, checker, shield, monitor, configuration",
    ),
    "audit": RustArea(["src/safety/audit.rs"], about="the audit trail"),
    "auth": RustArea(
        ["src/telemetry/auth.rs", "src/telemetry/webconfig.rs"], about="basic auth, web config files"
    ),
    "telemetry": RustArea(
        ["src/telemetry/routes.rs", "src/telemetry/health.rs"], about="exporter routes, health report"
    ),
    "rewards": RustArea(["src/envs/*.rs"], re=REWARD_RE, about="each env's reward functions"),
    "termination": RustArea(
        ["src/vector/kernel.rs"],
        re=TERMINATION_RE,
        about="terminated/truncated in the batch step (finish_one)",
    ),
}
PY_AREAS: dict[str, PyArea] = {
    "py-safety": PyArea(
        "python/neorl_industrial/safety.py",
        ["tests/test_safety.py", "tests/test_mutants_safety.py"],
        about="safety.py against its tests",
    ),
    "py-datasets": PyArea("python/neorl_industrial/datasets.py", ["tests/test_datasets.py"]),
    "py-vector": PyArea("python/neorl_industrial/vector.py", ["tests/test_vector.py"]),
}
GROUPS = {
    "rust": list(RUST_AREAS),
    "python": list(PY_AREAS),
    "all": [*RUST_AREAS, *PY_AREAS],
}


@dataclass
class Tally:
    caught: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    timeout: list[str] = field(default_factory=list)
    unviable: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------------- explanations
def stable_name(name: str) -> str:
    """A mutant's name without line and column (``src/x.rs:12:5: replace ...`` -> ``src/x.rs: replace ...``)."""
    return re.sub(r"^([^:]+):\d+(:\d+)?:", r"\1:", name.strip())


def load_explained() -> dict[str, str]:
    """Explained (equivalent or out-of-reach) mutants: ``name  # reason`` per line. A name written without
    line and column matches that edit anywhere in the file (and survives edits elsewhere); with them, only
    there."""
    out: dict[str, str] = {}
    if not EXPLAINED.exists():
        return out
    for line in EXPLAINED.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, why = line.partition("  # ")
        out[name.strip()] = why.strip()
    return out


def is_explained(name: str, explained: dict[str, str]) -> bool:
    return name.strip() in explained or stable_name(name) in explained


# --------------------------------------------------------------------------- Rust
def cargo_mutants() -> list[str]:
    if shutil.which("cargo-mutants") is None:
        print("== cargo-mutants is missing: cargo install cargo-mutants --locked", flush=True)
        subprocess.run(["cargo", "install", "cargo-mutants", "--locked"], check=True)
    return ["cargo", "mutants"]


def rust_args(area: RustArea) -> list[str]:
    args: list[str] = []
    for f in area.files:
        args += ["--file", f]
    for f in area.exclude:
        args += ["--exclude", f]
    if area.re:
        args += ["--re", area.re]
    return args


def rust_env() -> dict[str, str]:
    env = dict(os.environ)
    # One shared build folder for every area's copy (dependencies built once), no debug info (fast links).
    env.setdefault("CARGO_TARGET_DIR", str(REPO / "target" / "mutation-build"))
    env.setdefault("CARGO_PROFILE_DEV_DEBUG", "0")
    env.setdefault("CARGO_PROFILE_TEST_DEBUG", "0")
    return env


def list_rust(name: str) -> list[str]:
    out = subprocess.run(
        [*cargo_mutants(), "--list", *rust_args(RUST_AREAS[name])],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def run_rust(name: str, jobs: int, timeout: float | None, only: str | None, iterate: bool) -> Tally:
    area = RUST_AREAS[name]
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    cmd = [*cargo_mutants(), "--jobs", str(jobs), "--output", str(out), *rust_args(area)]
    if only:  # replaces the area's own filter (cargo-mutants ORs its --re options)
        cmd = [c for c in cmd if c not in ("--re", area.re)] + ["--re", only]
    if iterate:
        cmd += ["--iterate"]
    if timeout:
        cmd += ["--timeout", str(timeout)]
    cmd += ["--", "--lib"]
    print("$ " + " ".join(cmd), flush=True)
    before = out / "mutants.out" / "unviable.txt"
    prev_unviable = before.read_text().splitlines() if iterate and before.exists() else []
    t0 = time.monotonic()
    # Exit codes: 0 all caught, 2 some missed, 3 some timed out; 1 and 4 are failures of the run itself.
    rc = subprocess.run(cmd, cwd=REPO, env=rust_env()).returncode
    if rc not in (0, 2, 3):
        raise SystemExit(f"cargo mutants failed ({rc}); see {out}/mutants.out/log")
    res = out / "mutants.out"

    def read(f: str) -> list[str]:
        p = res / f
        return [x for x in p.read_text().splitlines() if x.strip()] if p.exists() else []

    # With --iterate, what earlier runs caught (or found unviable) counts as before.
    earlier = read("previously_caught.txt") if iterate else []
    unviable = read("unviable.txt")
    earlier_unviable = [m for m in earlier if m in set(prev_unviable)] if iterate else []
    unviable = list(dict.fromkeys(earlier_unviable + unviable))
    if iterate:  # keep the unviable list whole for the next iteration
        (res / "unviable.txt").write_text("".join(m + "\n" for m in unviable))
    return Tally(
        [m for m in earlier if m not in set(earlier_unviable)] + read("caught.txt"),
        read("missed.txt"),
        read("timeout.txt"),
        unviable,
        time.monotonic() - t0,
    )


# --------------------------------------------------------------------------- Python
_SWAP_CMP: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_SWAP_BIN: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.Mult,
    ast.Pow: ast.Mult,
}
_OP_TEXT = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+", ast.Sub: "-",
    ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.And: "and", ast.Or: "or",
}  # fmt: skip


@dataclass
class PyMutant:
    path: tuple[tuple[str, int | None], ...]  # how to reach the node from the module
    kind: str  # what to do to it
    arg: int = 0
    name: str = ""


def _walk(node: ast.AST, path: tuple = ()) -> Iterator[tuple[tuple, ast.AST]]:
    """Every node with its path, skipping annotations and docstrings (not behaviour)."""
    yield path, node
    for fname, value in ast.iter_fields(node):
        if fname in ("annotation", "returns", "type_comment", "decorator_list"):
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, ast.AST):
                    continue
                if (
                    fname == "body"
                    and i == 0
                    and isinstance(item, ast.Expr)
                    and isinstance(item.value, ast.Constant)
                    and isinstance(item.value.value, str)
                ):
                    continue
                yield from _walk(item, (*path, (fname, i)))
        elif isinstance(value, ast.AST):
            yield from _walk(value, (*path, (fname, None)))


def _follow(tree: ast.AST, path: tuple) -> ast.AST:
    node = tree
    for fname, i in path:
        node = getattr(node, fname) if i is None else getattr(node, fname)[i]
    return node


def _function_of(tree: ast.Module, path: tuple) -> str:
    names = []
    node: ast.AST = tree
    for fname, i in path:
        node = getattr(node, fname) if i is None else getattr(node, fname)[i]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
    return ".".join(names) or "<module>"


def py_mutants(source: str, rel: str) -> list[PyMutant]:
    tree = ast.parse(source)
    out: list[PyMutant] = []
    for path, node in _walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', 0)}:{getattr(node, 'col_offset', 0) + 1}:"
        fn = _function_of(tree, path)

        def add(
            kind: str, what: str, arg: int = 0, path: tuple = path, where: str = where, fn: str = fn
        ) -> None:
            out.append(PyMutant(path, kind, arg, f"{where} {what} in {fn}"))

        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _SWAP_CMP:
                    new = _SWAP_CMP[type(op)]
                    add("cmp", f"replace {_OP_TEXT[type(op)]} with {_OP_TEXT[new]}", i)
        elif isinstance(node, ast.BinOp) and type(node.op) in _SWAP_BIN:
            new = _SWAP_BIN[type(node.op)]
            add("bin", f"replace {_OP_TEXT[type(node.op)]} with {_OP_TEXT[new]}")
        elif isinstance(node, ast.BoolOp):
            other = "or" if isinstance(node.op, ast.And) else "and"
            add("bool", f"replace {_OP_TEXT[type(node.op)]} with {other}")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            add("not", "delete not")
        elif isinstance(node, ast.Constant) and type(node.value) in (bool, int) and path:
            if isinstance(node.value, bool):
                add("const", f"replace {node.value} with {not node.value}")
            else:
                add("const", f"replace {node.value} with {node.value + 1}")
        elif isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                add("return", "replace return value with None")
        elif isinstance(node, (ast.If, ast.While)):
            add("negate", f"negate {type(node).__name__.lower()} condition")
        elif isinstance(node, ast.Raise):
            add("raise", "delete raise")
    return out


def apply_py(source: str, m: PyMutant) -> str:
    tree = ast.parse(source)
    node = _follow(tree, m.path)
    if m.kind == "cmp":
        assert isinstance(node, ast.Compare)
        node.ops[m.arg] = _SWAP_CMP[type(node.ops[m.arg])]()
    elif m.kind == "bin":
        assert isinstance(node, ast.BinOp)
        node.op = _SWAP_BIN[type(node.op)]()
    elif m.kind == "bool":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif m.kind == "const":
        assert isinstance(node, ast.Constant)
        node.value = (not node.value) if isinstance(node.value, bool) else node.value + 1
    elif m.kind in ("not", "return", "negate", "raise"):
        parent = _follow(tree, m.path[:-1])
        fname, i = m.path[-1]
        if m.kind == "not":
            assert isinstance(node, ast.UnaryOp)
            new: ast.AST = node.operand
        elif m.kind == "return":
            new = ast.Return(value=ast.Constant(value=None))
        elif m.kind == "negate":
            new = copy.copy(node)
            new.test = ast.UnaryOp(op=ast.Not(), operand=node.test)  # type: ignore[attr-defined]
        else:
            new = ast.Pass()
        if i is None:
            setattr(parent, fname, new)
        else:
            getattr(parent, fname)[i] = new
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def run_py(name: str, timeout: float | None, only: str | None) -> Tally:
    area = PY_AREAS[name]
    tests = [t for t in area.tests if (REPO / t).exists()]
    module = REPO / area.module
    source = module.read_text(encoding="utf-8")
    mutants = py_mutants(source, area.module)
    if only:
        mutants = [m for m in mutants if re.search(only, m.name)]
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"mutation-{name}-"))
    tally = Tally()
    t0 = time.monotonic()
    try:
        pkg_src = REPO / "python" / "neorl_industrial"
        shutil.copytree(pkg_src, scratch / "neorl_industrial", ignore=shutil.ignore_patterns("__pycache__"))
        target = scratch / "neorl_industrial" / module.name
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(scratch), os.environ.get("PYTHONPATH", "")]))
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        pytest = [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            *tests,
        ]
        probe = subprocess.run(
            [sys.executable, "-c", f"import neorl_industrial.{module.stem} as m; print(m.__file__)"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if Path(probe.stdout.strip()) != target:
            raise SystemExit(f"the scratch copy is not the package imported: {probe.stdout}{probe.stderr}")
        print(f"$ {' '.join(pytest[1:])}   (baseline, {len(mutants)} mutants of {area.module})", flush=True)
        b0 = time.monotonic()
        base = subprocess.run(pytest, cwd=REPO, env=env, capture_output=True, text=True)
        baseline = time.monotonic() - b0
        if base.returncode != 0:
            raise SystemExit(f"baseline fails:\n{base.stdout[-3000:]}{base.stderr[-2000:]}")
        limit = timeout or max(60.0, 3 * baseline + 20)
        print(f"baseline {baseline:.1f} s; per-mutant timeout {limit:.0f} s", flush=True)
        for n, m in enumerate(mutants, 1):
            target.write_text(apply_py(source, m), encoding="utf-8")
            try:
                r = subprocess.run(pytest, cwd=REPO, env=env, capture_output=True, text=True, timeout=limit)
                verdict = "missed" if r.returncode == 0 else "caught"
            except subprocess.TimeoutExpired:
                verdict = "timeout"
            getattr(tally, verdict).append(m.name)
            if verdict == "missed":
                print(f"MISSED  {m.name}", flush=True)
            if n % 20 == 0:
                print(f"  {n}/{len(mutants)} ({time.monotonic() - t0:.0f} s)", flush=True)
        target.write_text(source, encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    tally.seconds = time.monotonic() - t0
    for verdict in ("caught", "missed", "timeout"):
        (out / f"{verdict}.txt").write_text("".join(x + "\n" for x in getattr(tally, verdict)))
    return tally


# --------------------------------------------------------------------------- report
def report(results: dict[str, Tally]) -> None:
    explained = load_explained()
    print()
    print("| area | mutants | caught | timeout | missed | explained | unviable | caught % | minutes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, t in results.items():
        known = [m for m in t.missed if is_explained(m, explained)]
        viable = len(t.caught) + len(t.timeout) + len(t.missed)
        score = 100.0 * (len(t.caught) + len(t.timeout)) / viable if viable else 100.0
        total = viable + len(t.unviable)
        print(
            f"| {name} | {total} | {len(t.caught)} | {len(t.timeout)} | {len(t.missed)} | {len(known)} | "
            f"{len(t.unviable)} | {score:.1f} | {t.seconds / 60:.0f} |"
        )
    for name, t in results.items():
        unexplained = [m for m in t.missed if not is_explained(m, explained)]
        if unexplained:
            print(f"\n{name}: missed and not explained in {EXPLAINED.relative_to(REPO)}:")
            for m in unexplained:
                print(f"  {m}")
    print("\n(caught % = (caught + timeout) / (caught + timeout + missed); explained: missed mutants")
    print(" listed with a reason in benches/mutation_explained.txt)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("areas", nargs="*", help=f"areas: {', '.join(GROUPS['all'])}; groups: rust, python, all")
    ap.add_argument("--list", action="store_true", help="count the mutants of each area, run nothing")
    ap.add_argument("--jobs", type=int, default=1, help="cargo-mutants build/test jobs (default 1)")
    ap.add_argument(
        "--timeout", type=float, default=None, help="test timeout per mutant [s] (default: from the baseline)"
    )
    ap.add_argument(
        "--only",
        default=None,
        help="only mutants whose name matches this regex (Rust: instead of the area's own filter)",
    )
    ap.add_argument(
        "--iterate",
        action="store_true",
        help="Rust: skip mutants caught by the previous run of the area (after adding tests)",
    )
    args = ap.parse_args(argv)
    names: list[str] = []
    for a in args.areas or (["all"] if args.list else []):
        for n in GROUPS.get(a, [a]):
            if n not in RUST_AREAS and n not in PY_AREAS:
                ap.error(f"unknown area {n!r}; areas: {', '.join(GROUPS['all'])}")
            if n not in names:
                names.append(n)
    if not names:
        ap.error("name at least one area (or --list)")
    if args.list:
        for n in names:
            if n in RUST_AREAS:
                found = list_rust(n)
                about = RUST_AREAS[n].about
            else:
                area = PY_AREAS[n]
                found = [
                    m.name for m in py_mutants((REPO / area.module).read_text(encoding="utf-8"), area.module)
                ]
                about = area.about or area.module
            if args.only:
                found = [m for m in found if re.search(args.only, m)]
            print(f"{n:12} {len(found):5} mutants  ({about})")
        return 0
    results: dict[str, Tally] = {}
    for n in names:
        print(f"\n== {n}", flush=True)
        if n in RUST_AREAS:
            results[n] = run_rust(n, args.jobs, args.timeout, args.only, args.iterate)
        else:
            results[n] = run_py(n, args.timeout, args.only)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
