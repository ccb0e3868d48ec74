"""SQLAlchemy 2 ORM over psycopg 3: two threads each add an order with
its lines (a relationship insert: the parent's id comes back from the
server and goes out again in the children's rows), then an audit."""

import os
import threading

from sqlalchemy import ForeignKey, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer: Mapped[str]
    lines: Mapped[list["Line"]] = relationship(back_populates="order")


class Line(Base):
    __tablename__ = "lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    sku: Mapped[str]
    order: Mapped[Order] = relationship(back_populates="lines")


url = "postgresql+psycopg://%s@%s:%s/%s" % (
    os.environ["PGUSER"], os.environ["PGHOST"], os.environ["PGPORT"], os.environ["PGDATABASE"])
engine = create_engine(url, pool_size=2)


def place(customer: str) -> None:
    with Session(engine) as s:
        s.add(Order(customer=customer, lines=[Line(sku="%s-%d" % (customer, i)) for i in range(3)]))
        s.commit()


threads = [threading.Thread(target=place, args=(c,)) for c in ("ann", "bob")]
for t in threads:
    t.start()
for t in threads:
    t.join()
with Session(engine) as s:
    orders = s.scalar(select(func.count()).select_from(Order)) or 0
    lines = s.scalar(select(func.count()).select_from(Line).join(Order)) or 0
    print("orders=%d lines=%d" % (orders, lines))
engine.dispose()
