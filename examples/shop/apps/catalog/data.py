"""The books the shop sells."""

from __future__ import annotations

from shopproto import catalog_pb2

PRODUCTS: tuple[catalog_pb2.Product, ...] = (
    catalog_pb2.Product(
        id=1,
        title="The Late Train",
        author="Mara Ellison",
        year=2019,
        pages=312,
        description=(
            "A night train stops between two stations and does not move again. "
            "Eleven passengers and one conductor wait for morning."
        ),
        price_cents=1899,
    ),
    catalog_pb2.Product(
        id=2,
        title="Notes for New Engineers",
        author="Tomasz Wrona",
        year=2021,
        pages=204,
        description="Short chapters on reading code, asking questions and keeping notes.",
        price_cents=2450,
    ),
    catalog_pb2.Product(
        id=3,
        title="The Cartographer's Daughter",
        author="Ines Albuquerque",
        year=2016,
        pages=478,
        description="A hand-drawn atlas hides a route that nobody was meant to follow.",
        price_cents=2100,
    ),
    catalog_pb2.Product(
        id=4,
        title="Bread, Slowly",
        author="Kofi Mensah",
        year=2023,
        pages=256,
        description="Sourdough and long fermentation, explained step by step.",
        price_cents=3200,
    ),
)


def product(product_id: int) -> catalog_pb2.Product | None:
    for p in PRODUCTS:
        if p.id == product_id:
            return p
    return None
