"""Load and validate a label schema, render its Label Studio labeling config; span attribute JSON."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import quoteattr

import yaml

from spanbank.errors import SchemaError

# a schema is a few kB; the budgets refuse a YAML alias bomb before it is expanded
MAX_SCHEMA_BYTES = 1 << 20
MAX_SCHEMA_NODES = 100_000  # YAML nodes with every alias expanded
LS_LABELS_NAME = "label"
LS_TEXT_NAME = "text"


@dataclass(frozen=True)
class Attribute:
    name: str
    values: tuple[str, ...]
    required: bool = False


@dataclass(frozen=True)
class Label:
    name: str
    description: str = ""
    color: str = "#888888"
    attributes: dict[str, Attribute] = field(default_factory=dict)


@dataclass(frozen=True)
class Relation:
    name: str
    source: str
    target: str


@dataclass(frozen=True)
class Schema:
    name: str
    version: int
    labels: dict[str, Label]
    relations: dict[str, Relation]
    import_mapping: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    description: str = ""
    # Label Studio has no discontinuous regions: this relation chains a span's fragment regions
    fragment_relation: str | None = None

    @property
    def ident(self) -> str:
        """`name-vN`, the version tag written into tasks and manifests."""
        return f"{self.name}-v{self.version}"

    def label_config(self) -> str:
        """Label Studio XML for this schema (labels, per-region attribute choices, relations)."""
        return render_label_config(self)

    def config_fingerprint(self) -> str:
        return hashlib.sha256(normalise_config(self.label_config()).encode()).hexdigest()[:16]

    def check_span(self, label: str, attributes: dict | None = None) -> str | None:
        """Return why a span's label/attributes are not in the schema, or None if they are."""
        if label not in self.labels:
            return (
                f"label {label!r} is not in schema {self.ident} (labels: {', '.join(self.labels)})"
            )
        for key, value in (attributes or {}).items():
            if key.startswith("_"):
                continue  # bookkeeping keys (e.g. `_fragment_of`), not annotator choices
            attr = self.labels[label].attributes.get(key)
            if attr is None:
                return f"attribute {key!r} is not defined for label {label}"
            if value is not None and value not in attr.values:
                return f"value {value!r} of {label}.{key} is not one of {', '.join(attr.values)}"
        return None

    def check_relation(self, name: str, source_label: str, target_label: str) -> str | None:
        """Return why a relation does not fit the schema, or None if it does."""
        rel = self.relations.get(name)
        if rel is None:
            return f"relation {name!r} is not in schema {self.ident}"
        if (rel.source, rel.target) != (source_label, target_label):
            return f"relation {name} goes {rel.source} -> {rel.target}, not {source_label} -> {target_label}"
        return None

    def infer_relation(self, source_label: str, target_label: str) -> str | None:
        """The one relation defined between these labels (in either direction), if any."""
        for rel in self.relations.values():
            if (rel.source, rel.target) == (source_label, target_label):
                return rel.name
        return None

    def map_import_label(self, fmt: str, label: str) -> str | None:
        """Our label for a foreign one (e.g. brat `Source` -> `SPEAKER`); None if unmapped."""
        if label in self.labels:
            return label
        return (self.import_mapping.get(fmt, {}).get("labels") or {}).get(label)

    def ignores_import_label(self, fmt: str, label: str) -> bool:
        return label in (self.import_mapping.get(fmt, {}).get("ignore") or ())

    def map_import_role(self, fmt: str, role: str) -> str | None:
        if role in self.relations:
            return role
        return (self.import_mapping.get(fmt, {}).get("roles") or {}).get(role)


def _mapping(value, where: str, what: str) -> dict:
    """`value` as a mapping (None: empty), or a SchemaError saying what should have been one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: {what} must be a mapping, not {type(value).__name__}")
    return value


_IDENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


def _parse(data: dict, where: str) -> Schema:
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: a schema must be a mapping with name, version, labels")
    for key in ("name", "version", "labels"):
        if key not in data:
            raise SchemaError(f"{where}: missing key {key!r}")
    if not isinstance(data["version"], int) or isinstance(data["version"], bool):
        raise SchemaError(f"{where}: version must be an integer")
    if data["version"] < 1:
        raise SchemaError(f"{where}: version must be 1 or more, not {data['version']}")
    name = data["name"]
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise SchemaError(
            f"{where}: name must be letters, digits, '_' or '-' (it names the schema's "
            f"version, e.g. news-v1), not {name!r}"
        )
    labels: dict[str, Label] = {}
    raw_labels = data["labels"]
    if not isinstance(raw_labels, dict) or not raw_labels:
        raise SchemaError(f"{where}: labels must be a non-empty mapping")
    for name, spec in raw_labels.items():
        if not str(name).isidentifier():
            raise SchemaError(f"{where}: label name {name!r} must be an identifier")
        spec = _mapping(spec, where, f"label {name}")
        attrs = {}
        for aname, aspec in _mapping(
            spec.get("attributes"), where, f"label {name} attributes"
        ).items():
            if not str(aname).isidentifier():
                raise SchemaError(f"{where}: attribute name {name}.{aname} must be an identifier")
            aspec = _mapping(aspec, where, f"attribute {name}.{aname}")
            values = aspec.get("values") or ()
            if not isinstance(values, (list, tuple)):
                raise SchemaError(f"{where}: attribute {name}.{aname} values must be a list")
            values = tuple(str(v) for v in values)
            if not values:
                raise SchemaError(f"{where}: attribute {name}.{aname} has no values")
            attrs[aname] = Attribute(aname, values, bool(aspec.get("required", False)))
        color = spec.get("color", "#888888")
        if not isinstance(color, str) or not color.strip():
            raise SchemaError(f"{where}: label {name} color must be text (e.g. '#d62728')")
        labels[name] = Label(name, str(spec.get("description", "")), color, attrs)
    controls: dict[str, str] = {LS_LABELS_NAME: "the labels", LS_TEXT_NAME: "the text"}
    for label in labels.values():  # Label Studio refuses a config naming two controls alike
        for aname in label.attributes:
            control = attribute_control_name(label.name, aname)
            if control in controls:
                raise SchemaError(
                    f"{where}: attribute {label.name}.{aname} would be Label Studio control "
                    f"{control!r}, as {controls[control]} is; rename one"
                )
            controls[control] = f"attribute {label.name}.{aname}"
    relations: dict[str, Relation] = {}
    for rname, spec in _mapping(data.get("relations"), where, "relations").items():
        if not isinstance(spec, dict) or "from" not in spec or "to" not in spec:
            raise SchemaError(f"{where}: relation {rname!r} needs 'from' and 'to'")
        for end in (spec["from"], spec["to"]):
            if not isinstance(end, str) or end not in labels:
                raise SchemaError(f"{where}: relation {rname!r} refers to unknown label {end!r}")
        relations[rname] = Relation(rname, spec["from"], spec["to"])
    mapping = _mapping(data.get("import_mapping"), where, "import_mapping")
    for fmt, spec in mapping.items():
        spec = _mapping(spec, where, f"import mapping {fmt}")
        for foreign, ours in _mapping(
            spec.get("labels"), where, f"import mapping {fmt} labels"
        ).items():
            if not isinstance(ours, str) or ours not in labels:
                raise SchemaError(
                    f"{where}: import mapping {fmt}:{foreign} -> unknown label {ours!r}"
                )
        for foreign, ours in _mapping(
            spec.get("roles"), where, f"import mapping {fmt} roles"
        ).items():
            if not isinstance(ours, str) or ours not in relations:
                raise SchemaError(
                    f"{where}: import role {fmt}:{foreign} -> unknown relation {ours!r}"
                )
        if not isinstance(spec.get("ignore") or [], list):
            raise SchemaError(f"{where}: import mapping {fmt} ignore must be a list of labels")
    return Schema(
        str(data["name"]),
        data["version"],
        labels,
        relations,
        mapping,
        data.get("description", ""),
        _fragment_relation(data.get("fragment_relation"), relations, where),
    )


def _fragment_relation(name, relations: dict, where: str) -> str | None:
    """The schema's `fragment_relation` name, checked not to clash with a span relation."""
    if name is None:
        return None
    if not isinstance(name, str) or not name.isidentifier():
        raise SchemaError(f"{where}: fragment_relation must be a name, not {name!r}")
    if name in relations:
        raise SchemaError(f"{where}: fragment_relation {name!r} is also a relation between spans")
    return name


def load_schema(path: str | os.PathLike | None = None) -> Schema:
    """Load a schema file; None means the bundled default `news` schema."""
    if path is None:
        text = resources.files("spanbank").joinpath("data/schemas/news.yaml").read_text("utf-8")
        where = "news.yaml"
    else:
        p = Path(path)
        try:
            if p.is_file() and p.stat().st_size > MAX_SCHEMA_BYTES:
                raise SchemaError(
                    f"{p}: {p.stat().st_size:,} bytes is too large for a schema (limit {MAX_SCHEMA_BYTES:,})"
                )
            text = p.read_text("utf-8")
        except FileNotFoundError:
            raise SchemaError(f"schema file not found: {p}") from None
        except UnicodeDecodeError:
            raise SchemaError(f"{p}: not UTF-8") from None
        except OSError as exc:
            raise SchemaError(f"{p}: cannot read the schema ({exc.strerror})") from None
        where = str(p)
    return _parse(_load_yaml(text, where), where)


def _load_yaml(text: str, where: str):
    """YAML -> Python data, refusing documents whose aliases expand beyond MAX_SCHEMA_NODES."""
    if len(text) > MAX_SCHEMA_BYTES:
        raise SchemaError(f"{where}: too large for a schema (limit {MAX_SCHEMA_BYTES:,} bytes)")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_nodes(node, {}) > MAX_SCHEMA_NODES:
            raise SchemaError(
                f"{where}: its aliases expand to more than {MAX_SCHEMA_NODES:,} YAML nodes; "
                "not a schema (a YAML alias bomb?)"
            )
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise SchemaError(f"{where}: not valid YAML{at}") from None
    except RecursionError:
        raise SchemaError(f"{where}: nested too deeply for a schema") from None
    finally:
        loader.dispose()


def _expanded_nodes(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes `node` stands for once every alias is expanded; linear in the distinct nodes."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    sizes[key] = MAX_SCHEMA_NODES + 1  # an alias to an enclosing node expands without end
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_nodes(c, sizes) for c in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_nodes(k, sizes) + _expanded_nodes(v, sizes) for k, v in node.value)
    else:
        size = 1
    sizes[key] = size
    return size


def default_schema_text() -> str:
    return resources.files("spanbank").joinpath("data/schemas/news.yaml").read_text("utf-8")


def attribute_control_name(label: str, attribute: str) -> str:
    """Name of the per-region Choices control holding `label`'s `attribute` in Label Studio."""
    return f"{label}_{attribute}"


def render_label_config(schema: Schema) -> str:
    q = quoteattr
    lines = ["<View>", "  <Relations>"]
    lines += [f"    <Relation value={q(r)}/>" for r in schema.relations]
    if schema.fragment_relation:
        lines.append(f"    <Relation value={q(schema.fragment_relation)}/>")
    lines += ["  </Relations>", f"  <Labels name={q(LS_LABELS_NAME)} toName={q(LS_TEXT_NAME)}>"]
    lines += [
        f"    <Label value={q(lab.name)} background={q(lab.color)}/>"
        for lab in schema.labels.values()
    ]
    lines += ["  </Labels>", f'  <Text name={q(LS_TEXT_NAME)} value="$text"/>']
    for lab in schema.labels.values():
        for attr in lab.attributes.values():
            name = attribute_control_name(lab.name, attr.name)
            lines.append(f'  <View visibleWhen="region-selected" whenLabelValue={q(lab.name)}>')
            lines.append(f"    <Header value={q(f'{lab.name} {attr.name}')}/>")
            required = ' required="true"' if attr.required else ""
            lines.append(
                f'    <Choices name={q(name)} toName={q(LS_TEXT_NAME)} perRegion="true"'
                f' choice="single-radio"{required}>'
            )
            lines += [f"      <Choice value={q(v)}/>" for v in attr.values]
            lines += ["    </Choices>", "  </View>"]
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def normalise_config(xml: str) -> str:
    """Whitespace-insensitive form of a labeling config, for drift checks."""
    return "".join(line.strip() for line in xml.splitlines())


# --------------------------------------------------------------------------- span attribute JSON


def attributes_json(attrs: dict | None) -> str | None:
    """Canonical JSON of a span's attributes (sorted keys) or None when it has none."""
    return json.dumps(attrs, sort_keys=True, ensure_ascii=False) if attrs else None


def parse_attributes(value) -> dict:
    if value is None or (isinstance(value, float) and value != value):
        return {}
    if isinstance(value, dict):
        return value
    return json.loads(value)
