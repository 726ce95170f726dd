"""Masks (脱敏), table-driven, and the promise never to raise."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridflow.personal import KINDS, RESTRICTED, TOMBSTONE, mask

TABLE = [
    # names: the first character of each part, * for every other character
    ("name", "王小明", "王**"),
    ("name", "王明", "王*"),
    ("name", "欧阳娜娜", "欧***"),
    ("name", "王", "*"),
    ("name", " 王小明 ", "王**"),
    ("name", "John Smith", "J*** S****"),
    ("name", "J. Smith", "J. S****"),
    ("name", "Mary-Jane O'Neil", "M***-J*** O'N***"),
    ("name", "阿卜杜·热合曼", "阿**·热**"),
    ("name", "Ｊｏｈｎ", "J***"),
    # phones
    ("phone", "13812345678", "138****5678"),
    ("phone", "138-1234-5678", "138****5678"),
    ("phone", "138 1234 5678", "138****5678"),
    ("phone", "１３８１２３４５６７８", "138****5678"),
    ("phone", "+86 138 1234 5678", "+86 138****5678"),
    ("phone", "008613812345678", "+86 138****5678"),
    ("phone", "8613812345678", "+86 138****5678"),
    ("phone", "021-62341234", "021-****1234"),
    ("phone", "02162341234", "021-****1234"),
    ("phone", "(021) 6234 1234", "021-****1234"),
    ("phone", "010-62345678", "010-****5678"),
    ("phone", "0571-88886666", "0571-****6666"),
    ("phone", "0571-8888666", "0571-***8666"),
    ("phone", "62341234", "****1234"),
    ("phone", "12345", "*2345"),
    ("phone", "110", "***"),
    ("phone", "无", "***"),
    ("phone", "12012345678", "*******5678"),  # 120... is no mobile prefix
    # resident ID numbers
    ("id_number", "310104199001011234", "310***********1234"),
    ("id_number", "31010419900101123x", "310***********123X"),
    ("id_number", "310104 19900101 1234", "310***********1234"),
    ("id_number", "３１０１０４１９９００１０１１２３４", "310***********1234"),
    ("id_number", "310104900101123", "***********1123"),  # 15-digit old format
    ("id_number", "E12345678", "*****5678"),
    ("id_number", "1234", "****"),
    # e-mail
    ("email", "wang@example.com", "w***@example.com"),
    ("email", "W.Xiao@Example.COM", "W***@Example.COM"),
    ("email", "ｗａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ", "w***@example.com"),
    ("email", "a@b@example.com", "a***@example.com"),
    ("email", "no-at-sign", "***"),
    ("email", "@example.com", "***"),
    ("email", "wang@", "***"),
    # addresses: kept to the street (and lane) level
    ("address", "长宁支路324弄5号302室", "长宁支路324弄***"),
    ("address", "上海市长宁区长宁支路324弄5号302室", "上海市长宁区长宁支路324弄***"),
    ("address", "长宁支路324弄", "长宁支路324弄***"),
    ("address", "华阳路街道长宁支路324弄华阳小区甲栋", "华阳路街道长宁支路324弄华阳小区***"),
    ("address", "华山路1号", "华山路***"),
    ("address", "北京市朝阳区建国路88号SOHO现代城", "北京市朝阳区建国路***"),
    ("address", "华漕镇许浦村12组8号", "华漕镇许浦村***"),
    ("address", "长宁支路三二四弄五号", "长宁支路***"),
    ("address", "长宁区324弄", "长宁区***"),  # a lane number only right after a street
    ("address", "长宁支路３２４弄５号", "长宁支路324弄***"),
    ("address", "12 Main Street, Apt 3", "***"),
    ("address", "某某大楼", "***"),
    # free text and others
    ("free_text", "王小明说他的电话是13812345678", "***"),
    ("other", "anything", "***"),
]


@pytest.mark.parametrize("kind, value, masked", TABLE)
def test_mask_table(kind: str, value: str, masked: str) -> None:
    assert mask(kind, value) == masked


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", ["", "   ", None])
def test_empty_values_mask_to_nothing(kind: str, value: Any) -> None:
    assert mask(kind, value) == ""


@pytest.mark.parametrize("value, kind, masked", [
    (13812345678, "phone", "138****5678"),
    (42, "name", "4*"),
    ({"phone": "13812345678"}, "free_text", "***"),
    (["王小明"], "name", "['王**']"),  # str() of a list, masked part by part
    (b"13812345678", "phone", "138****5678"),
    (3.5, "id_number", "***"),
])
def test_non_strings_are_read_as_text(value: Any, kind: str, masked: str) -> None:
    assert mask(kind, value) == masked


def test_unknown_kind_hides_everything() -> None:
    assert mask("nickname", "小明") == "***"


class Hostile:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_a_value_that_cannot_become_text_is_hidden() -> None:
    assert mask("name", Hostile()) == "***"


def test_tombstone_and_restricted_are_bilingual_and_distinct() -> None:
    assert "已删除" in TOMBSTONE and "erased" in TOMBSTONE
    assert "已限制" in RESTRICTED and "erased" not in RESTRICTED


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([*KINDS, "weird"]),
       st.one_of(st.text(), st.integers(), st.floats(), st.none(), st.binary(max_size=8)))
def test_mask_never_raises_and_never_returns_a_long_value_whole(kind: str, value: Any) -> None:
    masked = mask(kind, value)
    assert isinstance(masked, str)
    text = "" if value is None else str(value).strip()
    if len(text) >= 6 and kind != "address":
        # Something of a long value is always hidden (an address may be all street).
        assert masked != text


@pytest.mark.parametrize("kind, value", [
    ("name", "王小明"), ("phone", "13812345678"), ("id_number", "310104199001011234"),
    ("email", "wang.xiao@example.com"), ("address", "长宁支路324弄5号302室"),
])
def test_a_mask_hides_the_value(kind: str, value: str) -> None:
    assert value not in mask(kind, value)
