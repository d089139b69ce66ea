//! Math functions: `abs`, `ceiling`, `round`, `sqrt`, `power`, `log`, ...

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};

use super::super::ast::Expr;
use super::super::eval::{single, Coll, Env, Evaluator};
use super::super::value::{Node, Quantity};
use super::super::Error;
use super::arity;

impl<'a> Evaluator<'a> {
    pub(super) fn math_fn(
        &self,
        name: &str,
        input: Coll<'a>,
        args: &[Expr],
        env: &Env<'a>,
    ) -> Result<Coll<'a>, Error> {
        let Some(item) = single(&input)? else {
            return Ok(vec![]);
        };
        let v = item.to_system();
        let (int, dec) = match &v {
            Some(Node::Int(i)) => (Some(*i), Decimal::from(*i)),
            Some(Node::Dec(d)) => (None, *d),
            Some(Node::Quantity(q)) if name == "abs" => {
                return Ok(vec![Node::Quantity(Quantity {
                    value: q.value.abs(),
                    unit: q.unit.clone(),
                })])
            }
            _ => return Err(Error::semantic(format!("{name}() on a non-number"))),
        };
        let f = dec.to_f64().unwrap_or(f64::NAN);
        let from_f = |x: f64| -> Coll<'a> {
            if x.is_finite() {
                Decimal::from_f64(x)
                    .map(|d| Node::Dec(d.normalize()))
                    .into_iter()
                    .collect()
            } else {
                vec![]
            }
        };
        let to_int = |d: Decimal| d.to_i64().map(Node::Int).into_iter().collect::<Coll<'a>>();
        Ok(match name {
            "abs" => match int {
                Some(i) => i.checked_abs().map(Node::Int).into_iter().collect(),
                None => vec![Node::Dec(dec.abs())],
            },
            "ceiling" => to_int(dec.ceil()),
            "floor" => to_int(dec.floor()),
            "truncate" => to_int(dec.trunc()),
            "round" => {
                arity(name, args, 0, 1)?;
                let p = if args.is_empty() {
                    0
                } else {
                    self.int_arg(args, 0, &input, env)?.unwrap_or(0)
                };
                if p < 0 {
                    return Err(Error::exec("round() precision must be >= 0"));
                }
                vec![Node::Dec(dec.round_dp_with_strategy(
                    p as u32,
                    RoundingStrategy::MidpointAwayFromZero,
                ))]
            }
            "sqrt" => {
                if f < 0.0 {
                    vec![]
                } else {
                    from_f(f.sqrt())
                }
            }
            "exp" => from_f(f.exp()),
            "ln" => {
                if f <= 0.0 {
                    vec![]
                } else {
                    from_f(f.ln())
                }
            }
            "log" => {
                arity(name, args, 1, 1)?;
                let b = self.arg(args, 0, &input, env)?;
                let Some(base) = single(&b)?
                    .and_then(|n| n.to_system())
                    .and_then(|n| super::super::eval::num(&n))
                else {
                    return Ok(vec![]);
                };
                from_f(f.ln() / base.to_f64().unwrap_or(f64::NAN).ln())
            }
            "power" => {
                arity(name, args, 1, 1)?;
                let e = self.arg(args, 0, &input, env)?;
                let Some(ex) = single(&e)?.and_then(|n| n.to_system()) else {
                    return Ok(vec![]);
                };
                match (int, &ex) {
                    (Some(b), Node::Int(x)) if *x >= 0 => b
                        .checked_pow(u32::try_from(*x).unwrap_or(u32::MAX))
                        .map(Node::Int)
                        .into_iter()
                        .collect(),
                    _ => {
                        let x = super::super::eval::num(&ex)
                            .and_then(|d| d.to_f64())
                            .unwrap_or(f64::NAN);
                        from_f(f.powf(x))
                    }
                }
            }
            _ => vec![],
        })
    }
}
