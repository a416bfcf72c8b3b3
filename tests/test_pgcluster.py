import psycopg2


def test_database_is_private_and_reachable(database_url: str) -> None:
    """Each test gets a database of its own on the session's private cluster."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_database()")
            (name,) = cur.fetchone()
    finally:
        conn.close()
    assert name.startswith("test_")
