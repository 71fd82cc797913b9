"""The worker's wiring, without a broker: topics and changelogs it creates up front."""
from stockflow.app import create_app
from stockflow.settings import Settings
from stockflow.streams.admin import TABLES, changelog_topics
from stockflow.streams.topics import SPECS, Topics


def test_every_table_changelog_is_created_before_faust_starts():
    settings = Settings(app_id="wiring", topic_prefix="wiring")
    rt = create_app(settings)
    assert set(rt.app.tables) == set(TABLES)
    names = {t.changelog_topic.get_topic_name() for t in rt.app.tables.values()}
    assert names == set(changelog_topics(settings))


def test_topic_registry_names():
    t = Topics("p")
    assert t.movements == "p.inventory.movements" and t.order_commands == "p.orders.commands"
    assert set(t.all()) == {f"p.{s.suffix}" for s in SPECS.values()}
    assert [n for n, s in Topics("stockflow").all().items() if not s.internal] == [
        "stockflow.nodes", "stockflow.inventory.movements", "stockflow.orders.commands",
        "stockflow.fulfillment.updates", "stockflow.allocations", "stockflow.fulfillment.requests",
        "stockflow.notifications", "stockflow.availability", "stockflow.orders.status", "stockflow.deadletter",
    ]
