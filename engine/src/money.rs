//! Money: integer minor units plus an ISO 4217 currency. Never floats.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Active ISO 4217 codes (funds and precious-metal codes left out: hotels don't price in them).
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Largest nightly rate or total we accept, in minor units. Far above any real room
/// (10^13 minor units), and small enough that 730 nights of it cannot overflow `i64`.
pub const MAX_AMOUNT_MINOR: i64 = 10_000_000_000_000;

/// An ISO 4217 currency code such as `CNY`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Accepts only active ISO 4217 codes, upper case.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if !ISO_4217.contains(&raw) {
            return Err(ValidationError::new(
                "currency",
                format!("{raw:?} is not an ISO 4217 currency code"),
            ));
        }
        let b = raw.as_bytes();
        Ok(Self([b[0], b[1], b[2]]))
    }

    /// The three-letter code.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters from the table above can be stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

/// An amount in minor units (fen, cents) of a currency.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub struct Money {
    /// Integer minor units; never negative for prices.
    pub amount_minor: i64,
    /// The currency the amount is in.
    pub currency: Currency,
}

/// Validates a price in minor units: `0..=MAX_AMOUNT_MINOR`.
pub fn parse_amount_minor(field: &'static str, amount: i64) -> Result<i64, ValidationError> {
    if !(0..=MAX_AMOUNT_MINOR).contains(&amount) {
        return Err(ValidationError::new(
            field,
            format!("must be between 0 and {MAX_AMOUNT_MINOR} minor units"),
        ));
    }
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_accepts_iso_codes_only() {
        assert_eq!(Currency::parse("CNY").unwrap().as_str(), "CNY");
        assert!(Currency::parse("cny").is_err());
        assert!(Currency::parse("ABC").is_err());
        assert!(Currency::parse("").is_err());
        assert!(Currency::parse("EURO").is_err());
    }

    #[test]
    fn amounts_are_bounded() {
        assert!(parse_amount_minor("amount", -1).is_err());
        assert!(parse_amount_minor("amount", 0).is_ok());
        assert!(parse_amount_minor("amount", MAX_AMOUNT_MINOR + 1).is_err());
    }
}
