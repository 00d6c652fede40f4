import pytest

from portal.models import Plan


@pytest.fixture
def catalogue(db):
    """SPEC 11's two plans: Professional £25 and Complete £45 a month."""
    plans = {}
    for name, price in (("Professional", 2500), ("Complete", 4500)):
        plans[name] = Plan(name=name, price_minor=price, currency="GBP")
        db.add(plans[name])
    db.flush()
    return plans
