"""Label schemas: the default news schema, malformed schemas, the generated Label Studio XML."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from spanbank.errors import SchemaError
from spanbank.schema import (
    LS_LABELS_NAME,
    LS_TEXT_NAME,
    attribute_control_name,
    default_schema_text,
    load_schema,
)

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "schema.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def _default_data() -> dict:
    return yaml.safe_load(default_schema_text())


def test_default_schema_loads():
    s = load_schema()
    assert (s.name, s.version, s.ident) == ("news", 1, "news-v1")
    assert list(s.labels) == ["SPEAKER", "QUOTE", "CUE", "EVENT"]
    assert s.labels["QUOTE"].attributes["type"].values == ("direct", "indirect", "mixed")
    assert "statement" in s.labels["EVENT"].attributes["type"].values
    assert {n: (r.source, r.target) for n, r in s.relations.items()} == {
        "said_by": ("QUOTE", "SPEAKER"),
        "cue": ("QUOTE", "CUE"),
    }
    assert s.map_import_label("brat", "Source") == "SPEAKER"
    assert s.map_import_label("brat", "Cue") == "CUE"
    assert s.map_import_label("brat", "Content") == "QUOTE"
    assert s.map_import_label("brat", "QUOTE") == "QUOTE"
    assert s.map_import_label("brat", "Nonsense") is None
    assert s.ignores_import_label("brat", "Attribution")
    assert s.map_import_role("brat", "Source") == "said_by"
    assert s.map_import_role("brat", "Cue") == "cue"


def test_repo_schema_file_is_the_bundled_default():
    assert load_schema(REPO / "schemas" / "news.yaml") == load_schema()


@pytest.mark.parametrize("key", ["name", "version", "labels"])
def test_missing_key(tmp_path, key):
    data = _default_data()
    del data[key]
    p = _write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(SchemaError, match=f"{p}: missing key '{key}'"):
        load_schema(p)


def test_bad_yaml_names_the_line(tmp_path):
    p = _write(tmp_path, "name: x\nversion: 1\nlabels: [unclosed\n  A: {\n")
    with pytest.raises(SchemaError, match=r"not valid YAML \(line \d+\)"):
        load_schema(p)


def test_relation_to_unknown_label(tmp_path):
    data = _default_data()
    data["relations"]["said_by"]["to"] = "PERSON"
    p = _write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(SchemaError, match="relation 'said_by' refers to unknown label 'PERSON'"):
        load_schema(p)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version="one"), "version must be an integer"),
        (lambda d: d.update(labels={}), "labels must be a non-empty mapping"),
        (lambda d: d["labels"].update({"BAD NAME": {}}), "must be an identifier"),
        (
            lambda d: d["labels"]["QUOTE"]["attributes"]["type"].update(values=[]),
            "QUOTE.type has no values",
        ),
        (
            lambda d: d["relations"].update(x={"from": "QUOTE"}),
            "relation 'x' needs 'from' and 'to'",
        ),
        (lambda d: d["import_mapping"]["brat"]["labels"].update(Foo="BAR"), "unknown label 'BAR'"),
        (
            lambda d: d["import_mapping"]["brat"]["roles"].update(Foo="knows"),
            "unknown relation 'knows'",
        ),
        (lambda d: d["labels"].update(QUOTE="a string"), "label QUOTE"),
        (lambda d: d["labels"]["QUOTE"].update(attributes=["type"]), "QUOTE"),
        (lambda d: d["labels"]["QUOTE"]["attributes"].update(type="direct"), "QUOTE.type"),
        (lambda d: d["relations"].update(x={"from": ["QUOTE"], "to": "SPEAKER"}), "relation 'x'"),
        (lambda d: d["import_mapping"].update(brat=["Source"]), "import mapping"),
        (lambda d: d.update(relations=["said_by"]), "relations"),
        (
            lambda d: d["import_mapping"]["brat"].update(ignore="Attribution"),
            "ignore must be a list",
        ),
        (lambda d: d.update(version=True), "version must be an integer"),
        # hunt O, F3: accepted by `schema validate`, then a traceback in `schema config`
        (lambda d: d["labels"]["QUOTE"].update(color=7), "label QUOTE color must be text"),
        (lambda d: d.update(version=-1), "version must be 1 or more"),
        (lambda d: d.update(name=""), "name must be letters"),
        (lambda d: d.update(name=[1]), "name must be letters"),
        (lambda d: d.update(name="a<b>&c"), "name must be letters"),
        (
            lambda d: d["labels"]["QUOTE"]["attributes"].update({"t y": {"values": ["x"]}}),
            r"attribute name QUOTE\.t y must be an identifier",
        ),
        (  # A_b + c and A + b_c are both control A_b_c: Label Studio refused it at the first push
            lambda d: d["labels"].update(
                A_b={"attributes": {"c": {"values": ["x"]}}},
                A={"attributes": {"b_c": {"values": ["y"]}}},
            ),
            r"attribute A_b\.c would be Label Studio control 'A_b_c', as attribute A\.b_c is",
        ),
    ],
)
def test_malformed_schemas(tmp_path, mutate, message):
    data = _default_data()
    mutate(data)
    p = _write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(SchemaError, match=message) as info:
        load_schema(p)
    assert str(info.value).startswith(str(p))
    assert "\n" not in str(info.value)


def test_not_a_mapping_and_unreadable_files(tmp_path):
    with pytest.raises(SchemaError, match="must be a mapping"):
        load_schema(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(SchemaError, match="schema file not found"):
        load_schema(tmp_path / "nope.yaml")
    with pytest.raises(SchemaError, match="not UTF-8"):
        p = tmp_path / "latin.yaml"
        p.write_bytes("name: caf\xe9\n".encode("latin-1"))
        load_schema(p)
    with pytest.raises(SchemaError, match=str(tmp_path)):
        load_schema(tmp_path)  # a directory


def test_label_config_xml_names_every_label_relation_and_choice():
    s = load_schema()
    root = ET.fromstring(s.label_config())
    assert root.tag == "View"
    labels = root.find("Labels")
    assert labels.get("name") == LS_LABELS_NAME and labels.get("toName") == LS_TEXT_NAME
    assert [lab.get("value") for lab in labels.findall("Label")] == list(s.labels)
    assert [lab.get("background") for lab in labels.findall("Label")] == [
        lab.color for lab in s.labels.values()
    ]
    text = root.find("Text")
    assert (text.get("name"), text.get("value")) == (LS_TEXT_NAME, "$text")
    assert [r.get("value") for r in root.find("Relations").findall("Relation")] == [
        "said_by",
        "cue",
        "continues",  # the fragment relation: Label Studio has no discontinuous regions
    ]
    choices = {c.get("name"): c for c in root.iter("Choices")}
    assert set(choices) == {
        attribute_control_name("QUOTE", "type"),
        attribute_control_name("EVENT", "type"),
    }
    quote = choices["QUOTE_type"]
    assert quote.get("perRegion") == "true" and quote.get("toName") == LS_TEXT_NAME
    assert [c.get("value") for c in quote.findall("Choice")] == ["direct", "indirect", "mixed"]
    # each per-region control is shown only for regions of its label
    views = [v for v in root.iter("View") if v.get("whenLabelValue")]
    assert sorted(v.get("whenLabelValue") for v in views) == ["EVENT", "QUOTE"]
    assert all(v.get("visibleWhen") == "region-selected" for v in views)


def test_label_config_escapes_and_fingerprint(tmp_path):
    data = _default_data()
    data["labels"]["QUOTE"]["attributes"]["type"]["values"].append('odd "<&>" value')
    data["labels"]["QUOTE"]["attributes"]["type"]["required"] = True
    s = load_schema(_write(tmp_path, yaml.safe_dump(data)))
    root = ET.fromstring(s.label_config())
    quote = next(c for c in root.iter("Choices") if c.get("name") == "QUOTE_type")
    assert quote.findall("Choice")[-1].get("value") == 'odd "<&>" value'
    assert quote.get("required") == "true"
    assert s.config_fingerprint() != load_schema().config_fingerprint()
    assert load_schema().config_fingerprint() == load_schema().config_fingerprint()


def test_schema_without_relations_or_attributes_renders(tmp_path):
    p = _write(tmp_path, "name: tiny\nversion: 2\nlabels:\n  PER: {}\n  ORG:\n")
    s = load_schema(p)
    assert s.ident == "tiny-v2" and s.relations == {}
    root = ET.fromstring(s.label_config())
    assert [lab.get("value") for lab in root.iter("Label")] == ["PER", "ORG"]
    assert list(root.iter("Choices")) == []


def test_check_span():
    s = load_schema()
    assert s.check_span("QUOTE", {"type": "direct"}) is None
    assert s.check_span("SPEAKER") is None
    assert s.check_span("QUOTE", {"_fragment_of": "T1"}) is None
    assert "label 'PERSON' is not in schema news-v1" in s.check_span("PERSON")
    assert s.check_span("QUOTE", {"type": "sarcastic"}) == (
        "value 'sarcastic' of QUOTE.type is not one of direct, indirect, mixed"
    )
    assert (
        s.check_span("SPEAKER", {"type": "direct"})
        == "attribute 'type' is not defined for label SPEAKER"
    )


def test_check_and_infer_relation():
    s = load_schema()
    assert s.check_relation("said_by", "QUOTE", "SPEAKER") is None
    assert "not SPEAKER -> QUOTE" in s.check_relation("said_by", "SPEAKER", "QUOTE")
    assert "not in schema" in s.check_relation("knows", "QUOTE", "SPEAKER")
    assert s.infer_relation("QUOTE", "CUE") == "cue"
    assert s.infer_relation("CUE", "SPEAKER") is None


@pytest.mark.parametrize(
    "value, message",
    [("said_by", "also a relation between spans"), (["x"], "must be a name")],
)
def test_fragment_relation_is_a_name_of_its_own(tmp_path, value, message):
    data = yaml.safe_load(default_schema_text())
    data["fragment_relation"] = value
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SchemaError, match=message):
        load_schema(path)


def test_schema_without_fragment_relation_renders_no_extra_relation(tmp_path):
    data = yaml.safe_load(default_schema_text())
    del data["fragment_relation"]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    s = load_schema(path)
    assert s.fragment_relation is None and "continues" not in s.label_config()
