"""The OpenAPI 3.1 description of /api/v1 (hand-written; tests check it against the answers)."""

from __future__ import annotations

DECIMAL = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["12.50"]}
CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$", "examples": ["GBP"]}
CREDIT_LEFT = {
    "type": "string",
    "pattern": r"^(Unlimited|\d+(\.\d+)?)$",
    "description": 'Decimal credit left, or "Unlimited" (never runs out).',
    "examples": ["4.50", "Unlimited"],
}

SCHEMAS = {
    "ChargeRequest": {
        "type": "object",
        "required": ["amount", "description", "idempotency_key"],
        "properties": {
            "amount": {
                "type": "string",
                "description": "Positive decimal in the account currency, no exponent.",
                "examples": ["0.42"],
            },
            "description": {"type": "string", "minLength": 1, "maxLength": 200},
            "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 100},
        },
    },
    "Balance": {
        "type": "object",
        "required": ["account", "balance", "credit_limit", "available_funds", "currency"],
        "properties": {
            "account": {"type": "string"},
            "balance": DECIMAL,
            "credit_limit": DECIMAL,
            "available_funds": DECIMAL,
            "currency": CURRENCY,
        },
    },
    "Charge": {
        "allOf": [
            {"$ref": "#/components/schemas/Balance"},
            {
                "type": "object",
                "required": ["entry_id", "amount"],
                "properties": {"entry_id": {"type": "integer"}, "amount": DECIMAL},
            },
        ]
    },
    "Refusal": {
        "type": "object",
        "required": ["error", "message", "amount", "available_funds", "currency"],
        "properties": {
            "error": {"type": "string", "enum": ["insufficient_funds", "account_inactive"]},
            "message": {"type": "string"},
            "amount": DECIMAL,
            "available_funds": DECIMAL,
            "currency": CURRENCY,
        },
    },
    "CardCodeCharge": {
        "type": "object",
        "required": ["code", "amount", "credit_left", "currency", "charge_id"],
        "properties": {
            "code": {"type": "string"},
            "amount": DECIMAL,
            "credit_left": CREDIT_LEFT,
            "currency": CURRENCY,
            "charge_id": {"type": "integer"},
        },
    },
    "CardCodeRefusal": {
        "type": "object",
        "required": ["error", "message", "code", "amount", "credit_left", "currency"],
        "properties": {
            "error": {"type": "string", "enum": ["insufficient_credit"]},
            "message": {"type": "string"},
            "code": {"type": "string"},
            "amount": DECIMAL,
            "credit_left": CREDIT_LEFT,
            "currency": CURRENCY,
        },
    },
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "errors": {
                "type": "object",
                "description": "Field name -> message (422 only).",
                "additionalProperties": {"type": "string"},
            },
        },
    },
}


def _json(schema: str, description: str) -> dict:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


COMMON = {
    "401": _json("Error", "Missing, unknown or revoked token."),
    "404": _json("Error", "No such account for this token's reseller."),
    "503": _json("Error", "Database busy; retry (charges: with the same idempotency_key)."),
}
CODE_PARAM = {
    "name": "code",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": r"^\d{4,20}$"},
}
ACCOUNT_PARAM = {
    "name": "account_number",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 32},
}


def openapi_document() -> dict:
    """The OpenAPI 3.1 document served at /api/v1/openapi.json."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "VoIP billing portal: switch API",
            "version": "1.0.0",
            "description": "Call charges debit balances; amounts are decimal strings.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/accounts/{account_number}/charges": {
                "post": {
                    "operationId": "postCharge",
                    "summary": "Debit a call charge (idempotent per idempotency_key).",
                    "parameters": [ACCOUNT_PARAM],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ChargeRequest"}
                            }
                        },
                    },
                    "responses": {
                        "201": _json("Charge", "Debited; the new balance and available funds."),
                        "402": _json("Refusal", "Available funds do not cover the charge."),
                        "422": _json("Error", "Invalid body; `errors` names each field."),
                        **COMMON,
                    },
                }
            },
            "/card-codes/{code}/charges": {
                "post": {
                    "operationId": "postCardCodeCharge",
                    "summary": "Debit a call from a card code's credit (idempotent per key).",
                    "parameters": [CODE_PARAM],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ChargeRequest"}
                            }
                        },
                    },
                    "responses": {
                        "201": _json("CardCodeCharge", "Debited; the Credit Left."),
                        "402": _json(
                            "CardCodeRefusal",
                            "The credit does not cover the charge (Credit Left 0: no calls).",
                        ),
                        "422": _json("Error", "Invalid body; `errors` names each field."),
                        **COMMON,
                    },
                }
            },
            "/accounts/{account_number}/balance": {
                "get": {
                    "operationId": "getBalance",
                    "summary": "Balance, credit limit and available funds.",
                    "parameters": [ACCOUNT_PARAM],
                    "responses": {"200": _json("Balance", "The account's funds."), **COMMON},
                }
            },
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
