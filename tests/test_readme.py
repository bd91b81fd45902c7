"""README commands stay true: CI runs exactly the README's test command."""
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


def test_ci_runs_the_readme_test_command():
    readme = _read("README.md")
    commands = [line for block in re.findall(r"```bash\n(.*?)```", readme, re.S)
                for line in block.splitlines() if "pytest" in line]
    assert len(commands) == 1, commands
    ci_lines = [line.strip() for line in _read(".ci", "run").splitlines()
                if line.strip() and not line.startswith("#")]
    assert ci_lines[-1] == commands[0].strip()


def test_readme_main_command_uses_a_shipped_gin_file():
    readme = _read("README.md")
    first = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    gin_file = re.search(r"--gin_file=(\S+)", first).group(1)
    assert os.path.exists(os.path.join(REPO, gin_file))
