"""Print the requirements of one of the project's extras (its own extras it names, followed), read
from pyproject.toml: the images install a service's dependencies before its source, so that a
change to the source rebuilds one small layer, not the environment."""
import sys
import tomllib

project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras, seen, out = project["optional-dependencies"], set(), list(project["dependencies"])


def add(extra: str) -> None:
    if extra in seen:
        return
    seen.add(extra)
    for req in extras[extra]:
        if req.startswith(f"{project['name']}["):
            for name in req[req.index("[") + 1:req.index("]")].split(","):
                add(name.strip())
        else:
            out.append(req)


for extra in sys.argv[2:]:
    add(extra)
print("\n".join(out))
