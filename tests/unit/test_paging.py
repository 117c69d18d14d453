"""One paging helper: every item of a paged list, in order, each page asked for once."""

from __future__ import annotations

from billing_core.ports import Page, iterate_pages


def pages_of(items: list[int], size: int) -> tuple[dict[str | None, Page[int]], list[str | None]]:
    pages: dict[str | None, Page[int]] = {}
    starts = list(range(0, len(items), size)) or [0]
    for n, start in enumerate(starts):
        cursor = None if n == 0 else f"c{start}"
        following = f"c{starts[n + 1]}" if n + 1 < len(starts) else None
        pages[cursor] = Page(items=items[start:start + size], next_cursor=following)
    return pages, []


def test_every_item_of_every_page_in_order_each_page_asked_once() -> None:
    pages, asked = pages_of(list(range(7)), 3)

    def fetch(cursor: str | None) -> Page[int]:
        asked.append(cursor)
        return pages[cursor]

    assert list(iterate_pages(fetch)) == list(range(7))
    assert asked == [None, "c3", "c6"]


def test_an_empty_list_is_one_empty_page() -> None:
    asked: list[str | None] = []

    def fetch(cursor: str | None) -> Page[int]:
        asked.append(cursor)
        return Page(items=[])

    assert list(iterate_pages(fetch)) == []
    assert asked == [None]


def test_pages_are_fetched_only_as_far_as_the_caller_reads() -> None:
    pages, asked = pages_of(list(range(10)), 2)

    def fetch(cursor: str | None) -> Page[int]:
        asked.append(cursor)
        return pages[cursor]

    items = iterate_pages(fetch)
    assert [next(items), next(items), next(items)] == [0, 1, 2]
    assert asked == [None, "c2"]
