"""The embedded sample network: 3 DCs and 25 stores in Germany, real coordinates."""
from __future__ import annotations

from ..streams.events import Node

DCS = [
    ("DC-BADHERSFELD", 50.868, 9.707),
    ("DC-DORTMUND", 51.514, 7.466),
    ("DC-LEIPZIG", 51.340, 12.375),
]

STORES = [
    ("ST-BERLIN", 52.520, 13.405),
    ("ST-HAMBURG", 53.551, 9.994),
    ("ST-MUENCHEN", 48.137, 11.575),
    ("ST-KOELN", 50.938, 6.960),
    ("ST-FRANKFURT", 50.110, 8.682),
    ("ST-STUTTGART", 48.776, 9.183),
    ("ST-DUESSELDORF", 51.227, 6.774),
    ("ST-LEIPZIG", 51.340, 12.375),
    ("ST-DORTMUND", 51.514, 7.466),
    ("ST-ESSEN", 51.456, 7.012),
    ("ST-BREMEN", 53.079, 8.802),
    ("ST-DRESDEN", 51.050, 13.738),
    ("ST-HANNOVER", 52.376, 9.732),
    ("ST-NUERNBERG", 49.452, 11.077),
    ("ST-DUISBURG", 51.435, 6.763),
    ("ST-BOCHUM", 51.482, 7.216),
    ("ST-WUPPERTAL", 51.256, 7.151),
    ("ST-BIELEFELD", 52.030, 8.532),
    ("ST-BONN", 50.737, 7.098),
    ("ST-MUENSTER", 51.961, 7.626),
    ("ST-MANNHEIM", 49.487, 8.466),
    ("ST-KARLSRUHE", 49.007, 8.404),
    ("ST-AUGSBURG", 48.371, 10.898),
    ("ST-WIESBADEN", 50.078, 8.240),
    ("ST-KIEL", 54.323, 10.123),
]


def sample_network() -> list[Node]:
    nodes = [
        Node(
            node_id=nid,
            kind="dc",
            lat=lat,
            lon=lon,
            services=("ship",),
            daily_capacity=None,
            safety_stock=2,
            cost_per_order=4.0,
            cost_per_km=0.01,
        )
        for nid, lat, lon in DCS
    ]
    for i, (nid, lat, lon) in enumerate(STORES):
        # Every store offers pickup; larger ones also ship and deliver same day.
        services = ("pickup", "curbside") if i % 3 == 2 else ("ship", "pickup", "curbside", "same_day")
        nodes.append(
            Node(
                node_id=nid,
                kind="store",
                lat=lat,
                lon=lon,
                services=services,
                daily_capacity=400,
                safety_stock=1,
                cost_per_order=7.5,
                cost_per_km=0.02,
            )
        )
    return nodes
