"""Every table model is pointed at the deployed table: a model left out of `bind` would read and write a
table named after its class default, which a stage-named deployment does not have."""

import importlib
import pkgutil

from chalicelib import adapters
from chalicelib.adapters import models, velocity


def all_models(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | all_models(sub)
    return found


def test_bind_points_every_table_model_at_the_deployed_table():
    for module in pkgutil.iter_modules(adapters.__path__):
        importlib.import_module(f"{adapters.__name__}.{module.name}")
    table_models = all_models(models.TableModel)
    assert models.ReturnsDayModel in table_models and len(table_models) >= 14
    kept = {m: (m.Meta.table_name, m.Meta.region, m.Meta.host) for m in table_models}
    try:
        models.bind("order-hub-prod-main", "eu-west-1", None)
        velocity.bind_velocity("order-hub-prod-main", "eu-west-1", None)
        unbound = sorted(m.__name__ for m in table_models if m.Meta.table_name != "order-hub-prod-main")
        assert unbound == []
    finally:
        for model, (table, region, host) in kept.items():
            model.Meta.table_name, model.Meta.region, model.Meta.host = table, region, host
            model._connection = None
