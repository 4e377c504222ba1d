// Apollo Client against the served gateway: one query, its answer printed as JSON.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";

const [url, token] = process.argv.slice(2);
const client = new ApolloClient({
  link: new HttpLink({ uri: url, headers: { authorization: `Bearer ${token}` } }),
  cache: new InMemoryCache(),
});
const { data } = await client.query({ query: gql`{ me { email } }` });
console.log(JSON.stringify(data));
