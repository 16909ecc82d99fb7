//! Request header checks shared by every `POST /api/v1...` endpoint.

use crate::ApiError;

pub const APPLICATION_JSON: &str = "application/json";
pub const APPLICATION_PROTOBUF: &str = "application/x-protobuf";

fn media_type(header: &str) -> &str {
    header.split(';').next().unwrap_or("").trim()
}

/// Checks `Content-Type`: Mesos requires it and accepts JSON or protobuf. Holdfast speaks
/// JSON only, so protobuf gets a 415 that says so instead of a parse failure.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let Some(value) = content_type else {
        return Err(ApiError::bad_request(
            "Expecting 'Content-Type' to be present",
        ));
    };
    match media_type(value) {
        t if t.eq_ignore_ascii_case(APPLICATION_JSON) => Ok(()),
        t if t.eq_ignore_ascii_case(APPLICATION_PROTOBUF) => Err(ApiError::new(
            415,
            "Expecting 'Content-Type' of application/json (this server does not speak application/x-protobuf)",
        )),
        _ => Err(ApiError::new(
            415,
            "Expecting 'Content-Type' of application/json or application/x-protobuf",
        )),
    }
}

/// Checks `Accept`: absent, `*/*`, `application/*` and `application/json` are fine.
pub fn check_accept(accept: Option<&str>) -> Result<(), ApiError> {
    let Some(value) = accept else { return Ok(()) };
    let acceptable = value.split(',').any(|item| {
        let t = media_type(item);
        t.is_empty()
            || t == "*/*"
            || t.eq_ignore_ascii_case("application/*")
            || t.eq_ignore_ascii_case(APPLICATION_JSON)
    });
    let protobuf = value
        .split(',')
        .any(|item| media_type(item).eq_ignore_ascii_case(APPLICATION_PROTOBUF));
    if acceptable {
        Ok(())
    } else if protobuf {
        // Mesos's wording would invite the client to ask for what it just asked for.
        Err(ApiError::new(
            406,
            "Expecting 'Accept' to allow 'application/json' (this server does not speak application/x-protobuf)",
        ))
    } else {
        Err(ApiError::new(
            406,
            "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type() {
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("application/json; charset=utf-8")).is_ok());
        assert_eq!(check_content_type(None).unwrap_err().status, 400);
        assert_eq!(
            check_content_type(Some("text/plain")).unwrap_err().message,
            "Expecting 'Content-Type' of application/json or application/x-protobuf"
        );
        assert_eq!(
            check_content_type(Some("application/x-protobuf"))
                .unwrap_err()
                .status,
            415
        );
    }

    #[test]
    fn accept() {
        for ok in [
            None,
            Some("*/*"),
            Some("application/json"),
            Some("text/html, application/json;q=0.9"),
        ] {
            assert!(check_accept(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(check_accept(Some("text/html")).unwrap_err().status, 406);
        let err = check_accept(Some("application/x-protobuf")).unwrap_err();
        assert_eq!(err.status, 406);
        assert!(
            err.message
                .contains("does not speak application/x-protobuf"),
            "{err}"
        );
    }
}
