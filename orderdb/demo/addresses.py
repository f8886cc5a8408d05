"""Real-looking Chinese recipients for ``orderdb demo``: names, mobile numbers and addresses that
pass ``create_order``'s ``ship_to`` checks. Everything is generated from a random generator:
common surnames and given-name characters, mobile numbers with real carrier prefixes and random
digits, real provinces, cities and districts with made-up house numbers. No real person's data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰建国志红文斌宇浩然欣怡子涵"
# mobile prefixes of China Mobile, China Unicom and China Telecom
MOBILE_PREFIXES = (
    "134", "135", "136", "137", "138", "139", "147", "150", "151", "152", "157", "158", "159",
    "178", "182", "183", "187", "188", "198", "130", "131", "132", "155", "156", "166", "175",
    "176", "185", "186", "133", "153", "173", "177", "180", "181", "189", "191", "199",
)  # fmt: skip
BUILDINGS = ("栋", "号楼", "幢")


@dataclass(frozen=True)
class District:
    province: str
    city: str
    district: str
    postcode: str
    lat: float
    lon: float
    streets: tuple[str, ...]


DISTRICTS = (
    District("广东省", "深圳市", "南山区", "518057", 22.533, 113.930,
             ("科技南十二路", "高新南一道", "南海大道", "学府路")),
    District("广东省", "深圳市", "福田区", "518048", 22.541, 114.055,
             ("深南大道", "福华三路", "益田路", "彩田路")),
    District("广东省", "广州市", "天河区", "510620", 23.125, 113.361,
             ("天河路", "体育西路", "黄埔大道西", "珠江新城华夏路")),
    District("上海市", "上海市", "浦东新区", "200120", 31.221, 121.544,
             ("世纪大道", "张杨路", "陆家嘴环路", "花木路")),
    District("上海市", "上海市", "徐汇区", "200030", 31.188, 121.437,
             ("漕溪北路", "肇嘉浜路", "天钥桥路", "宜山路")),
    District("北京市", "北京市", "朝阳区", "100020", 39.921, 116.443,
             ("建国路", "朝阳北路", "东三环中路", "望京街")),
    District("北京市", "北京市", "海淀区", "100080", 39.959, 116.298,
             ("中关村大街", "学院路", "知春路", "苏州街")),
    District("浙江省", "杭州市", "西湖区", "310012", 30.274, 120.130,
             ("文三路", "天目山路", "古墩路", "教工路")),
    District("江苏省", "南京市", "鼓楼区", "210008", 32.066, 118.770,
             ("中山北路", "北京西路", "湖南路", "汉中门大街")),
    District("四川省", "成都市", "武侯区", "610041", 30.642, 104.043,
             ("人民南路四段", "科华北路", "天府大道北段", "武侯祠大街")),
    District("湖北省", "武汉市", "洪山区", "430070", 30.505, 114.343,
             ("珞喻路", "雄楚大道", "光谷大道", "卓刀泉路")),
)  # fmt: skip


def name(rng: random.Random) -> str:
    """``王芳``, ``陈子涵``: a surname and one or two given-name characters."""
    given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
    return rng.choice(SURNAMES) + given


def mobile(rng: random.Random) -> str:
    """An 11-digit Chinese mobile number (a real prefix, random digits)."""
    return rng.choice(MOBILE_PREFIXES) + "".join(str(rng.randrange(10)) for _ in range(8))


def ship_to(
    rng: random.Random,
    *,
    city: str | None = None,
    with_unit: bool = True,
    coordinates: bool = False,
) -> dict[str, Any]:
    """A ``ship_to`` for create_order: recipient, mobile, province, city, district, street and
    house number, postcode; ``line2`` (building and flat) unless ``with_unit`` is false (the
    "incomplete address" the warehouse holds an order for); ``lat``/``lon`` near the district's
    centre when ``coordinates`` (courier routes)."""
    choices = [d for d in DISTRICTS if city is None or d.city == city] or list(DISTRICTS)
    d = rng.choice(choices)
    address: dict[str, Any] = {
        "name": name(rng),
        "phone": mobile(rng),
        "country": "CN",
        "province": d.province,
        "city": d.city,
        "district": d.district,
        "line1": f"{rng.choice(d.streets)}{rng.randint(1, 399)}号",
        "postcode": d.postcode,
    }
    if with_unit:
        address["line2"] = unit(rng)
    if coordinates:
        address["lat"] = round(d.lat + rng.uniform(-0.01, 0.01), 6)
        address["lon"] = round(d.lon + rng.uniform(-0.01, 0.01), 6)
    return address


def unit(rng: random.Random) -> str:
    """``3栋2单元1201室``: building, entrance and flat."""
    floor = rng.randint(2, 32)
    return (
        f"{rng.randint(1, 12)}{rng.choice(BUILDINGS)}{rng.randint(1, 4)}单元"
        f"{floor}{rng.randint(1, 4):02d}室"
    )


def one_line(address: dict[str, Any]) -> str:
    """The address as it is written on a parcel: province city district line1 line2."""
    parts = [address.get(k) for k in ("province", "city", "district", "line1", "line2")]
    # a municipality's province and city are the same name: written once
    if parts[0] == parts[1]:
        parts = parts[1:]
    return "".join(str(p) for p in parts if p)


__all__ = ["DISTRICTS", "District", "mobile", "name", "one_line", "ship_to", "unit"]
