"""Sign in with an API key (the same keys as the API) and sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from kubeinfer.gateway.auth import client_address
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.ui import csrf, session
from kubeinfer.gateway.ui.render import page
from kubeinfer.gateway.ui.urls import base_path

router = APIRouter()


@router.get("/")
async def home(request: Request) -> Response:
    return RedirectResponse(f"{base_path(request)}/batches", 303)


@router.get("/login")
async def login_form(request: Request) -> Response:
    if session.key_ring(request).open:
        return RedirectResponse(f"{base_path(request)}/batches", 303)
    return page(request, "login.html", error=None)


@router.post("/login", dependencies=[Depends(csrf.check)])
async def login(request: Request, api_key: Annotated[str, Form()] = "") -> Response:
    key = api_key.strip()
    if not key:
        return page(request, "login.html", 400, error="Enter an API key.")
    try:
        session.key_ring(request).project_of(key, client_address(request))
    except ApiError as exc:
        return page(request, "login.html", exc.status_code, error=f"{exc.message}.")
    response = RedirectResponse(f"{base_path(request)}/batches", 303)
    session.sign_in(request, response, key)
    return response


@router.post("/logout", dependencies=[Depends(csrf.check)])
async def logout(request: Request) -> Response:
    response = RedirectResponse(f"{base_path(request)}/login", 303)
    session.sign_out(request, response)
    return response
