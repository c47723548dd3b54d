"""HTML of the shop's pages, from values (see `views`). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from frontend.views import Book, CartLine, Frontend, Page, Rating, Reviews

REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
DETAILS_UNAVAILABLE = "Sorry, product details are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"
CART_UNAVAILABLE = "Sorry, your cart is currently unavailable."
PAYMENT_UNAVAILABLE = "Sorry, payment is currently unavailable. You have not been charged."
STAR_COLORS = ("black", "red")


def money(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


def stars(rating: Rating) -> str:
    """Filled and empty stars out of five, in the color the reviews version chose."""
    n = max(0, min(5, rating.stars))
    color = rating.color if rating.color in STAR_COLORS else "black"
    glyphs = "\u2605" * n + "\u2606" * (5 - n)
    return (
        f'<span class="stars stars-{color}" style="color: {color}" '
        f'title="{n} of 5 stars">{glyphs}</span>'
    )


def _layout(title: str, body: str, user: str | None, frontend: Frontend) -> str:
    if user:
        who = f'Signed in as <b class="user">{escape(user)}</b> <a href="/logout">Sign out</a>'
    else:
        who = (
            '<form class="login" method="get" action="/login">'
            '<input name="u" placeholder="jason, alice or bob" size="16"> '
            "<button>Sign in</button></form>"
        )
    served = f"frontend-{escape(frontend.version)} ({escape(frontend.color)})"
    if frontend.instance:
        served += f", instance {escape(frontend.instance)}"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} \u00b7 Ami Shop</title>"
        '<link rel="stylesheet" href="/static/style.css"></head>\n'
        f'<body class="theme-{escape(frontend.color)}">\n'
        '<header><a class="brand" href="/productpage">Ami Shop</a> '
        f'<a href="/cart">Cart</a> <span class="who">{who}</span></header>\n'
        f"<main>\n{body}</main>\n"
        f'<footer class="served-by-frontend">Page served by {served}</footer>\n'
        "</body></html>\n"
    )


def _book_section(book: Book | None) -> str:
    if book is None:
        return f'<section class="product"><p class="error">{DETAILS_UNAVAILABLE}</p></section>\n'
    return (
        '<section class="product">'
        f'<h1 class="title">{escape(book.title)}</h1>'
        f'<p class="byline">by <span class="author">{escape(book.author)}</span>, '
        f"{book.year}, {book.pages} pages</p>"
        f'<p class="description">{escape(book.description)}</p>'
        f'<p class="price">{money(book.price_cents)}</p>'
        f'<form method="post" action="/cart/add?item={book.id}">'
        "<button>Add to cart</button></form>"
        "</section>\n"
    )


def _reviews_section(reviews: Reviews | None) -> str:
    if reviews is None:
        return f'<section class="reviews"><p class="error">{REVIEWS_UNAVAILABLE}</p></section>\n'
    items = []
    for review in reviews.reviews:
        if review.rating is not None:
            rating = stars(review.rating)
        elif reviews.ratings_error:
            rating = f'<span class="error">{escape(reviews.ratings_error)}</span>'
        else:
            rating = ""
        items.append(
            '<blockquote class="review">'
            f"<p>{escape(review.text)}</p>"
            f'<footer><span class="reviewer">{escape(review.reviewer)}</span> {rating}</footer>'
            "</blockquote>"
        )
    served = f'<b class="reviews-version">{escape(reviews.service)}</b>'
    if reviews.served_by:
        served += f' (instance <span class="instance">{escape(reviews.served_by)}</span>)'
    return (
        '<section class="reviews"><h2>Reviews</h2>'
        + "".join(items)
        + f'<p class="served-by">Reviews served by {served}</p></section>\n'
    )


def _book_list(books: Sequence[Book], current: int) -> str:
    if not books:
        return ""
    links = []
    for b in books:
        mark = ' class="current"' if b.id == current else ""
        links.append(f'<li{mark}><a href="/productpage?id={b.id}">{escape(b.title)}</a></li>')
    return f'<nav class="books"><h2>More books</h2><ul>{"".join(links)}</ul></nav>\n'


def product_page(page: Page) -> str:
    """The product page: the book, its reviews with stars, and links to other books."""
    title = page.book.title if page.book else "Product"
    body = (
        _book_section(page.book)
        + _reviews_section(page.reviews)
        + _book_list(page.books, page.product_id)
    )
    return _layout(title, body, page.user, page.frontend)


def cart_page(user: str | None, lines: Sequence[CartLine] | None, frontend: Frontend) -> str:
    """The cart; `lines` None means the cart service did not answer."""
    if lines is None:
        body = f'<section class="cart"><p class="error">{CART_UNAVAILABLE}</p></section>\n'
        return _layout("Cart", body, user, frontend)
    if not lines:
        body = '<section class="cart"><h1>Your cart</h1><p>Your cart is empty.</p></section>\n'
        return _layout("Cart", body, user, frontend)
    rows = []
    for line in lines:
        name = escape(line.book.title) if line.book else f"item {line.item}"
        rows.append(
            f'<tr class="line"><td>{name}</td><td>{line.quantity}</td>'
            f"<td>{money(line.cents)}</td></tr>"
        )
    total = sum(line.cents for line in lines)
    body = (
        '<section class="cart"><h1>Your cart</h1><table>'
        "<tr><th>Book</th><th>Qty</th><th>Price</th></tr>"
        + "".join(rows)
        + f'<tr class="total"><td>Total</td><td></td><td>{money(total)}</td></tr></table>'
        '<form method="post" action="/checkout"><button>Check out</button></form>'
        "</section>\n"
    )
    return _layout("Cart", body, user, frontend)


def message_page(title: str, message: str, user: str | None, frontend: Frontend) -> str:
    """A page with one message (checkout results, login errors)."""
    body = f'<section class="message"><h1>{escape(title)}</h1><p>{escape(message)}</p></section>\n'
    return _layout(title, body, user, frontend)
