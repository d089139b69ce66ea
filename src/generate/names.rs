//! People's names from several naming traditions, so that stored and
//! searched data is not all ASCII: José, Zoë, Müller, Åsa, 李.

use serde_json::{json, Value};

use super::rng::Rng;

/// A naming tradition: female given names, male given names, family names.
struct Culture {
    female: &'static [&'static str],
    male: &'static [&'static str],
    family: &'static [&'static str],
    /// Relative share of people.
    weight: u32,
}

const CULTURES: &[Culture] = &[
    Culture {
        female: &[
            "Emma",
            "Olivia",
            "Ava",
            "Charlotte",
            "Amelia",
            "Harper",
            "Zoë",
            "Chloé",
            "Abigail",
            "Grace",
            "Madison",
            "Evelyn",
        ],
        male: &[
            "Liam", "Noah", "James", "William", "Benjamin", "Lucas", "Henry", "Theodore", "Jack",
            "Owen", "Samuel", "Daniel",
        ],
        family: &[
            "Smith",
            "Johnson",
            "Williams",
            "Brown",
            "Jones",
            "Miller",
            "Davis",
            "Wilson",
            "Anderson",
            "Taylor",
            "O'Brien",
            "McAllister",
        ],
        weight: 50,
    },
    Culture {
        female: &[
            "María",
            "Sofía",
            "Lucía",
            "Valentina",
            "Camila",
            "Isabel",
            "Ximena",
            "Guadalupe",
            "Inés",
            "Begoña",
        ],
        male: &[
            "José",
            "Juan",
            "Luis",
            "Andrés",
            "Martín",
            "Diego",
            "Sebastián",
            "Joaquín",
            "Ramón",
            "Jesús",
        ],
        family: &[
            "García",
            "Rodríguez",
            "Martínez",
            "Hernández",
            "López",
            "González",
            "Pérez",
            "Sánchez",
            "Ramírez",
            "Núñez",
            "Muñoz",
            "Peña",
        ],
        weight: 20,
    },
    Culture {
        female: &[
            "Jutta",
            "Anneliese",
            "Lena",
            "Sophie",
            "Käthe",
            "Hannah",
            "Marlene",
        ],
        male: &[
            "Jürgen", "Lukas", "Matthias", "Björn", "Günther", "Felix", "Tobias",
        ],
        family: &[
            "Müller",
            "Schröder",
            "Weiß",
            "Groß",
            "Köhler",
            "Schäfer",
            "Bäcker",
            "Fischer",
        ],
        weight: 6,
    },
    Culture {
        female: &[
            "Åsa", "Ingrid", "Sigrid", "Maja", "Linnéa", "Astrid", "Signe",
        ],
        male: &[
            "Björn", "Søren", "Anders", "Øystein", "Håkan", "Lars", "Mikael",
        ],
        family: &[
            "Andersson",
            "Johansson",
            "Ødegård",
            "Lindqvist",
            "Nyström",
            "Sjöberg",
            "Åberg",
            "Kristiansen",
        ],
        weight: 4,
    },
    Culture {
        female: &["芳", "静", "丽", "敏", "婷", "秀英"],
        male: &["伟", "强", "磊", "军", "洋", "志明"],
        family: &["李", "王", "张", "刘", "陈", "杨"],
        weight: 6,
    },
    Culture {
        female: &["Lan", "Hương", "Thảo", "Mai", "Ngọc"],
        male: &["Minh", "Dũng", "Huy", "Tuấn", "Quang"],
        family: &["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng"],
        weight: 4,
    },
    Culture {
        female: &["Priya", "Ananya", "Lakshmi", "Aishwarya", "Deepa"],
        male: &["Arjun", "Rahul", "Vikram", "Suresh", "Aditya"],
        family: &["Rao", "Menon", "Iyer", "Sharma", "Patel", "Nair"],
        weight: 6,
    },
    Culture {
        female: &["Zofia", "Małgorzata", "Agnieszka", "Zuzana", "Kateřina"],
        male: &["Łukasz", "Paweł", "Tomáš", "Jiří", "Krzysztof"],
        family: &["Wójcik", "Kowalczyk", "Dvořák", "Nowak", "Szymański"],
        weight: 4,
    },
];

/// Romanised forms of the Han names above, in the same order.
const PINYIN_FAMILY: &[&str] = &["Li", "Wang", "Zhang", "Liu", "Chen", "Yang"];
const PINYIN_FEMALE: &[&str] = &["Fang", "Jing", "Li", "Min", "Ting", "Xiuying"];
const PINYIN_MALE: &[&str] = &["Wei", "Qiang", "Lei", "Jun", "Yang", "Zhiming"];

/// A generated person's names.
pub struct Person {
    /// HumanName values: the official name first.
    pub names: Vec<Value>,
    /// An ASCII local part for an e-mail address.
    pub email_user: String,
}

pub fn person(rng: &mut Rng, female: bool) -> Person {
    let weights: Vec<u32> = CULTURES.iter().map(|c| c.weight).collect();
    let ci = rng.weighted(&weights);
    let culture = &CULTURES[ci];
    let given_list = if female { culture.female } else { culture.male };
    let gi = rng.below(given_list.len() as u64) as usize;
    let fi = rng.below(culture.family.len() as u64) as usize;
    let given = given_list[gi];
    let family = culture.family[fi];
    if ci == 4 {
        // Han names: family name first, written together; a pinyin form too.
        let (pin_given, pin_family) = (
            if female {
                PINYIN_FEMALE[gi]
            } else {
                PINYIN_MALE[gi]
            },
            PINYIN_FAMILY[fi],
        );
        return Person {
            names: vec![
                json!({"use": "official", "text": format!("{family}{given}"), "family": family, "given": [given]}),
                json!({"use": "usual", "text": format!("{pin_given} {pin_family}"), "family": pin_family, "given": [pin_given]}),
            ],
            email_user: format!("{}.{}{}", pin_given, pin_family, rng.below(1000))
                .to_ascii_lowercase(),
        };
    }
    let mut given_names = vec![given];
    if rng.chance(0.3) {
        let middle = *rng.pick(given_list);
        if middle != given {
            given_names.push(middle);
        }
    }
    let mut names = vec![json!({"use": "official", "family": family, "given": given_names})];
    if female && rng.chance(0.15) {
        let maiden = *rng.pick(culture.family);
        if maiden != family {
            names.push(json!({"use": "maiden", "family": maiden, "given": [given]}));
        }
    }
    Person {
        names,
        email_user: format!("{}.{}{}", ascii(given), ascii(family), rng.below(1000)),
    }
}

/// A lower-case ASCII rendering for e-mail addresses (drops what it cannot map).
fn ascii(s: &str) -> String {
    const FOLDS: &[(&str, char)] = &[
        ("áàäåâãầấạảăÅÄÁ", 'a'),
        ("éèëêếệễÉ", 'e'),
        ("íìïî", 'i'),
        ("óòöôøọồơờØÖ", 'o'),
        ("úùüûũưụ", 'u'),
        ("ñ", 'n'),
        ("ßš", 's'),
        ("łŁ", 'l'),
        ("ř", 'r'),
        ("žŻż", 'z'),
        ("č", 'c'),
        ("ýỹ", 'y'),
        ("đĐ", 'd'),
    ];
    s.chars()
        .filter_map(|c| {
            if c.is_ascii_alphabetic() {
                return Some(c.to_ascii_lowercase());
            }
            FOLDS
                .iter()
                .find(|(from, _)| from.contains(c))
                .map(|(_, to)| *to)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_include_non_ascii_and_ascii_emails() {
        let mut rng = Rng::new(5, 5);
        let mut non_ascii = 0;
        for i in 0..500 {
            let p = person(&mut rng, i % 2 == 0);
            let text = p.names[0].to_string();
            if !text.is_ascii() {
                non_ascii += 1;
            }
            assert!(p.email_user.is_ascii(), "{}", p.email_user);
            assert!(p.email_user.len() > 2, "{text}");
        }
        assert!(non_ascii > 50, "{non_ascii}");
    }
}
