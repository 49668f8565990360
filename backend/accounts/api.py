"""Token issue for scripts: `POST /api/auth/token/` with user name and password."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .services import token_issue


class TokenRequestSerializer(serializers.Serializer[dict[str, str]]):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=512, style={"input_type": "password"})


class TokenResponseSerializer(serializers.Serializer[dict[str, str]]):
    token = serializers.CharField()


class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    throttle_scope = "login"

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenResponseSerializer})
    def post(self, request: Request) -> Response:
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # Django's request, not DRF's wrapper: axes marks a locked-out attempt on it
        # for its middleware to answer 429.
        token = token_issue(
            request=request._request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        return Response({"token": token})
