"""The gateway's data layer: every SQL statement, beside the one method that runs it.

``pool`` holds the aiopg pool, its cursor helper and the one mapping of driver errors to
domain errors; ``records`` the frozen values rows leave as; one module per area
(``enrollment``, ``credentials``, ``nodes``, ``last_seen``, ``housekeeping``), the CLI's
one-shot commands (``oneshot``), the LISTEN connection (``listen``) and the numbered
migrations (``schema``). Nothing outside this package sees aiopg, psycopg2 or a row.
"""
