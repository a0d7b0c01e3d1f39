//! The demo hotel `innkeep serve --demo` loads into an empty data dir.

use innkeep_actors::{Engine, EngineError};
use innkeep_engine::{HotelId, RoomNumber, RoomTypeCode};

/// The demo hotel's id.
pub const DEMO_HOTEL: &str = "DEMO";

/// Payment secret used with `--demo` when none is configured (printed, so curl users can
/// sign callbacks; never use it in production).
pub const DEMO_PAYMENT_SECRET: &str = "innkeep-demo-secret-not-for-production";

/// Creates the demo hotel unless a hotel of that id exists. Returns whether it loaded.
pub async fn load(engine: &Engine) -> Result<bool, EngineError> {
    let hotel = HotelId::parse(DEMO_HOTEL).map_err(innkeep_engine::DomainError::from)?;
    if engine.hotel(&hotel).is_ok() {
        return Ok(false);
    }
    engine
        .put_hotel(
            hotel.clone(),
            "Innkeep Demo Hotel, The Bund",
            "Asia/Shanghai",
            "CNY",
        )
        .await?;
    let types: [(&str, &str, u16, i64, &[&str]); 3] = [
        (
            "KING",
            "King room",
            2,
            68_000,
            &["101", "102", "103", "104", "105", "106"],
        ),
        (
            "TWIN",
            "Twin room",
            3,
            58_000,
            &["201", "202", "203", "204", "205", "206"],
        ),
        ("SUITE", "Bund view suite", 4, 168_000, &["301", "302"]),
    ];
    for (code, name, capacity, rate, rooms) in types {
        let code = RoomTypeCode::parse(code).map_err(innkeep_engine::DomainError::from)?;
        engine
            .put_room_type(&hotel, code.clone(), name, capacity, rate)
            .await?;
        for number in rooms {
            let number = RoomNumber::parse(number).map_err(innkeep_engine::DomainError::from)?;
            engine.put_room(&hotel, number, code.clone()).await?;
        }
    }
    Ok(true)
}

/// A few curl lines to try the demo, for a server on `base` (e.g. `http://127.0.0.1:8080`).
pub fn instructions(base: &str, secret: &str, today: &str, tomorrow: &str) -> String {
    format!(
        r#"Innkeep demo hotel {DEMO_HOTEL} is ready at {base}. Try:

  curl -s {base}/v1/hotels/{DEMO_HOTEL}
  curl -s '{base}/v1/hotels/{DEMO_HOTEL}/availability?arrival={today}&departure={tomorrow}&guests=2'
  curl -s -X POST {base}/v1/hotels/{DEMO_HOTEL}/reservations -H 'content-type: application/json' \
    -H 'Idempotency-Key: demo-1' \
    -d '{{"room_type":"KING","arrival":"{today}","departure":"{tomorrow}","guests":2,
         "guest":{{"name":"Li Lei","phone":"+86 138 0000 0000","email":"li@example.com"}}}}'
  curl -s {base}/v1/reservations/<id>
  curl -s -X POST {base}/v1/reservations/<id>/cancel

Unless the config names another payment provider, the built-in sandbox "charges" each
booking about a second after it is made and calls back, so it turns confirmed by itself
(see GET {base}/v1/payments/<out_trade_no>). A provider's callback, signed by hand:
  body='{{"out_trade_no":"<out_trade_no>","trade_no":"T1","status":"succeeded","amount":<amount>,"currency":"CNY"}}'
  t=$(date +%s); sig=$(printf '%s' "$t.$body" | openssl dgst -sha256 -hmac '{secret}' | sed 's/^.* //')
  curl -s -X POST {base}/v1/payments/notify -H 'content-type: application/json' \
    -H "X-Signature: t=$t,v1=$sig" -d "$body"
"#
    )
}
